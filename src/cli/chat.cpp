// `anvil chat`: the conversation is rendered whole with the model's chat template each
// turn; the generator reuses the K/V of the prefix it already holds, so only the new turn
// is prefilled.
#include "chat.h"

#include <cstdio>
#include <iostream>

#include "anvil/core/error.h"
#include "chat_prompt.h"
#include "loaded_model.h"

namespace anvil::cli {
namespace {

constexpr const char* kHelp = "commands: /reset (start a new conversation), /exit (quit)";

struct Conversation {
  std::vector<ChatMessage> messages;
  std::string system;

  void reset() {
    messages.clear();
    if (!system.empty()) messages.push_back({"system", system});
  }
};

// Generates the assistant's reply to the conversation, streaming it to stdout.
std::string reply(infer::Generator& generator, const LoadedModel& loaded, const ChatPrompt& chat,
                  const Conversation& conversation, const RunOptions& options) {
  const std::vector<int32_t> prompt = loaded.tokenizer->encode(chat.render(conversation.messages, true));
  ANVIL_CHECK(static_cast<int64_t>(prompt.size()) < generator.context_capacity(), "the conversation (", prompt.size(),
              " tokens) no longer fits the context of ", generator.context_capacity(),
              " tokens: /reset to start over, or use a larger --ctx-size");
  infer::GenerationParams params;
  params.max_tokens = options.max_tokens;
  params.sampler = options.sampler;
  params.stop_strings = options.stop_strings;
  params.stop_tokens = loaded.end_of_generation;
  const infer::GenerationResult result = generator.generate(prompt, params, [](const infer::TokenEvent& event) {
    std::fwrite(event.text.data(), 1, event.text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  print_stats(result, *loaded.model);
  return result.text;
}

}  // namespace

CLI::App* add_chat_command(CLI::App& app, ChatOptions& options) {
  CLI::App* command = app.add_subcommand("chat", "Chat with a model on the terminal (its own chat template)");
  add_run_options(*command, options.run);
  command->add_option("--system", options.system, "System message opening the conversation");
  return command;
}

int run_chat(const ChatOptions& options) {
  Ctx ctx(CtxOptions{options.run.threads});
  const LoadedModel loaded = load_model(ctx, options.run.model_path, options.run.device);
  configure_model(options.run, *loaded.model);
  const ChatPrompt chat(loaded);
  infer::Generator generator(ctx, *loaded.model, *loaded.tokenizer,
                             generator_options(options.run, loaded.model->config()));
  std::fprintf(stderr, "anvil: %s\n", kHelp);
  Conversation conversation{{}, options.system};
  conversation.reset();
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      conversation.reset();
      generator.reset();
      std::fputs("(new conversation)\n", stdout);
      continue;
    }
    if (line.empty()) continue;
    if (line[0] == '/') {
      std::printf("unknown command %s; %s\n", line.c_str(), kHelp);
      continue;
    }
    conversation.messages.push_back({"user", line});
    try {
      conversation.messages.push_back({"assistant", reply(generator, loaded, chat, conversation, options.run)});
    } catch (const Error& error) {
      conversation.messages.pop_back();  // the turn is dropped; the conversation goes on
      std::fprintf(stderr, "anvil: error: %s\n", error.what());
    }
  }
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace anvil::cli
