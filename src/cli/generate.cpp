// `anvil generate`: tokenizes the prompt (optionally as a chat turn), generates, and
// streams the text to stdout; timings go to stderr.
#include "generate.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "anvil/core/error.h"
#include "chat_prompt.h"
#include "loaded_model.h"
#include "prefill_profile.h"

namespace anvil::cli {

CLI::App* add_generate_command(CLI::App& app, GenerateOptions& options) {
  CLI::App* command = app.add_subcommand("generate", "Generate a continuation of a prompt");
  add_run_options(*command, options.run);
  auto* prompt = command->add_option("-p,--prompt", options.prompt, "The prompt");
  auto* file = command->add_option("-f,--file", options.prompt_file, "Read the prompt from a file");
  prompt->excludes(file);
  command->callback([prompt, file] {
    if (prompt->count() + file->count() == 0) throw CLI::RequiredError("--prompt or --file");
  });
  command->add_flag("--chat", options.chat, "Wrap the prompt in the model's chat template as a user message");
  command->add_option("--system", options.system, "System message (with --chat)");
  command
      ->add_option("--prefill-repeat", options.prefill_repeat,
                   "Benchmark: then prefill the prompt this many times more (warm; median), and once with per-phase "
                   "timing")
      ->check(CLI::Range(0, 1000));
  command->add_flag("--cold-phases", options.cold_phases,
                    "Benchmark: time the phases of the first (cold) prefill, a device sync at each");
  return command;
}

namespace {

std::string read_prompt_file(const std::string& path) {
  ANVIL_CHECK(std::filesystem::is_regular_file(path), "prompt file '", path, "' does not exist");
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

}  // namespace

int run_generate(const GenerateOptions& options) {
  const std::string prompt_text = options.prompt_file.empty() ? options.prompt : read_prompt_file(options.prompt_file);
  Ctx ctx(CtxOptions{options.run.threads});
  const LoadedModel loaded = load_model(ctx, options.run.model_path, options.run.device);
  configure_model(options.run, *loaded.model);
  std::vector<int32_t> prompt;
  if (options.chat) {
    const ChatPrompt chat(loaded);
    std::vector<ChatMessage> messages;
    if (!options.system.empty()) messages.push_back({"system", options.system});
    messages.push_back({"user", prompt_text});
    prompt = loaded.tokenizer->encode(chat.render(messages, true));
  } else {
    tokenizer::EncodeOptions encode;
    encode.add_bos = loaded.tokenizer->add_bos_by_default();
    prompt = loaded.tokenizer->encode(prompt_text, encode);
  }
  ANVIL_CHECK(!prompt.empty(), "the prompt is empty");

  infer::Generator generator(ctx, *loaded.model, *loaded.tokenizer,
                             generator_options(options.run, loaded.model->config()));
  std::optional<PhaseClock> cold_clock;
  if (options.cold_phases) cold_clock.emplace(ctx, *loaded.model);
  infer::GenerationParams params;
  params.max_tokens = options.run.max_tokens;
  params.sampler = options.run.sampler;
  params.stop_strings = options.run.stop_strings;
  if (!options.run.ignore_eos) params.stop_tokens = loaded.end_of_generation;
  const infer::GenerationResult result = generator.generate(prompt, params, [](const infer::TokenEvent& event) {
    std::fwrite(event.text.data(), 1, event.text.size(), stdout);
    std::fflush(stdout);
    return true;
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  print_stats(result, *loaded.model);
  if (cold_clock) {
    cold_clock->print(result.stats.prefill_seconds);
    cold_clock.reset();
  }
  if (options.prefill_repeat > 0) profile_prefill(ctx, generator, *loaded.model, prompt, options.prefill_repeat);
  return 0;
}

}  // namespace anvil::cli
