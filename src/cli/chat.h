#pragma once
// `anvil chat -m MODEL`: an interactive conversation on stdin/stdout.
#include <CLI/CLI.hpp>
#include <string>

#include "sampling_options.h"

namespace anvil::cli {

struct ChatOptions {
  RunOptions run;
  std::string system;  // system message opening the conversation
};

// Adds the `chat` subcommand to `app`.
CLI::App* add_chat_command(CLI::App& app, ChatOptions& options);
// Reads user lines from stdin, streams the replies; /reset starts over, /exit (or end of
// input) quits.
int run_chat(const ChatOptions& options);

}  // namespace anvil::cli
