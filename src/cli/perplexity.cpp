// `anvil perplexity`: the method of docs/reference.md (non-overlapping chunks of --ctx-size
// tokens, the last may be shorter, every token after a chunk's first scored); --second-half
// gives what llama.cpp's llama-perplexity tool prints instead (see infer/perplexity.h).
#include "perplexity.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "anvil/core/error.h"
#include "anvil/infer/perplexity.h"
#include "loaded_model.h"

namespace anvil::cli {
namespace {

std::string read_text_file(const std::string& path) {
  ANVIL_CHECK(std::filesystem::is_regular_file(path), "text file '", path, "' does not exist");
  std::ifstream stream(path, std::ios::binary);
  ANVIL_CHECK(stream.good(), "cannot read '", path, "'");
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

}  // namespace

CLI::App* add_perplexity_command(CLI::App& app, PerplexityCommandOptions& options) {
  CLI::App* command = app.add_subcommand("perplexity", "Perplexity of a model on a text file");
  command->add_option("-m,--model", options.model_path, "Model: GGUF file, safetensors file or Hugging Face folder")
      ->required();
  command->add_option("-f,--file", options.text_path, "Text file")->required();
  command->add_option("--device", options.device, "Where the model runs: cpu or cuda (the first GPU)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  command->add_option("--threads", options.threads, "Worker threads (0 = all cores)")->check(CLI::Range(0, 4096));
  command->add_option("-c,--ctx-size", options.context_size, "Tokens per chunk")->check(CLI::Range(2, 1 << 30));
  command->add_option("-b,--batch-size", options.batch_size, "Tokens per forward pass")->check(CLI::Range(1, 1 << 30));
  command->add_option("--chunks", options.max_chunks, "Chunks to evaluate at most (0 = all)")
      ->check(CLI::Range(0, 1 << 30));
  command->add_flag("--second-half", options.second_half,
                    "Score only the second half of each whole chunk (llama.cpp's llama-perplexity tool)");
  return command;
}

int run_perplexity(const PerplexityCommandOptions& options) {
  const std::string text = read_text_file(options.text_path);
  Ctx ctx(CtxOptions{options.threads});
  const LoadedModel loaded = load_model(ctx, options.model_path, options.device);
  tokenizer::EncodeOptions encode;
  encode.add_bos = loaded.tokenizer->add_bos_by_default();
  const std::vector<int32_t> tokens = loaded.tokenizer->encode(text, encode);

  infer::PerplexityOptions perplexity;
  perplexity.context_tokens = options.context_size;
  perplexity.max_batch_tokens = options.batch_size;
  perplexity.max_chunks = options.max_chunks;
  if (options.second_half) {
    perplexity.first_scored = options.context_size / 2 + 1;
    perplexity.partial_last_chunk = false;
  }
  std::fprintf(stderr, "anvil: %zu tokens; chunks of %lld tokens\n", tokens.size(),
               static_cast<long long>(options.context_size));
  const infer::PerplexityResult result = infer::evaluate_perplexity(
      ctx, *loaded.model, tokens, perplexity, [](const infer::PerplexityResult& so_far, int64_t total_chunks) {
        std::fprintf(stderr, "[%lld/%lld] ppl %.4f (%.1f s, %.1f tokens/s)\n", static_cast<long long>(so_far.chunks),
                     static_cast<long long>(total_chunks), so_far.perplexity, so_far.seconds,
                     static_cast<double>(so_far.evaluated_tokens) / so_far.seconds);
      });
  std::printf("PPL = %.4f +/- %.4f (%lld chunks, %lld tokens scored, %.1f s)\n", result.perplexity,
              result.perplexity_error, static_cast<long long>(result.chunks),
              static_cast<long long>(result.scored_tokens), result.seconds);
  return 0;
}

}  // namespace anvil::cli
