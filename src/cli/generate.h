#pragma once
// `anvil generate -m MODEL -p PROMPT`: one completion, streamed to stdout.
#include <CLI/CLI.hpp>
#include <string>

#include "sampling_options.h"

namespace anvil::cli {

struct GenerateOptions {
  RunOptions run;
  std::string prompt;
  std::string prompt_file;   // read the prompt from this file instead
  bool chat = false;         // wrap the prompt in the model's chat template as a user turn
  std::string system;        // system message for --chat
  bool cold_phases = false;  // time the first prefill phase by phase (prefill_profile.h)
  int prefill_repeat = 0;    // then time the prefill this many times more, warm (prefill_profile.h)
};

// Adds the `generate` subcommand to `app`.
CLI::App* add_generate_command(CLI::App& app, GenerateOptions& options);
// Prints the generated text as it streams, then a statistics line to stderr.
int run_generate(const GenerateOptions& options);

}  // namespace anvil::cli
