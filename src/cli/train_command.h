#pragma once
// `anvil train`, `anvil data prepare` and `anvil plot`: the pre-training commands.
namespace CLI {
class App;
}

namespace anvil::cli {

// Adds the commands to `app`; each runs from its CLI11 callback (errors are thrown).
void add_train_commands(CLI::App& app);

}  // namespace anvil::cli
