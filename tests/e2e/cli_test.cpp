// End to end: the `anvil` binary on a tiny random GGUF written here (a SmolLM2-like model
// with the small Qwen2 tokenizer and a ChatML template) and, when present, on the real
// SmolLM2-135M-Instruct: the output format, greedy output equal to the library's Generator,
// the perplexity report, and clear errors with exit code 1 for bad paths and arguments.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "anvil/infer/generator.h"
#include "anvil/io/gguf.h"
#include "anvil/io/gguf_writer.h"
#include "anvil/tokenizer/bpe_tokenizer.h"
#include "model/tiny_model.h"

namespace anvil::testing {
namespace {

const std::string kSource = ANVIL_SOURCE_DIR;
const std::string kTokenizer = kSource + "/tests/fixtures/tokenizer/small_qwen2.gguf";
const std::string kSmolLm2 = kSource + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const char* const kChatMl =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream text;
  text << stream.rdbuf();
  return text.str();
}

std::string quoted(const std::string& arg) {
  std::string out = "'";
  for (const char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `anvil ARGS...` with stdin from /dev/null (or `input`).
CliResult run_cli(const TempDir& dir, const std::vector<std::string>& args, const std::string& input = "") {
  std::ofstream(dir.path("stdin.txt")) << input;
  std::string command = quoted(ANVIL_CLI_PATH);
  for (const std::string& arg : args) command += " " + quoted(arg);
  command += " < " + quoted(dir.path("stdin.txt")) + " > " + quoted(dir.path("out.txt")) + " 2> " +
             quoted(dir.path("err.txt"));
  const int status = std::system(command.c_str());
  CliResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = read_file(dir.path("out.txt"));
  result.err = read_file(dir.path("err.txt"));
  return result;
}

// A tiny random model with a real (small) tokenizer and a ChatML template in one GGUF.
std::string write_tiny_gguf(const TempDir& dir, Rng& rng) {
  const io::GgufFile tokenizer = io::GgufFile::open(kTokenizer);
  TinySpec spec = smollm_spec();
  spec.vocab = static_cast<int64_t>(tokenizer.get("tokenizer.ggml.tokens").as_array().items.size());
  spec.max_position = 128;
  TinyWeights weights_f64 = random_weights(spec, rng);
  // Smaller tied embeddings flatten the logits, so sampling has real choices to make.
  for (double& value : weights_f64.at("model.embed_tokens.weight").values) value *= 0.15;
  write_gguf_checkpoint(dir.path("weights.gguf"), spec, weights_f64);
  const io::GgufFile weights = io::GgufFile::open(dir.path("weights.gguf"));
  io::GgufWriter writer;
  for (const auto& [key, value] : weights.metadata()) writer.set(key, value);
  for (const auto& [key, value] : tokenizer.metadata()) {
    if (key.rfind("tokenizer.", 0) == 0) writer.set(key, value);
  }
  writer.set("tokenizer.chat_template", io::GgufWriter::string(kChatMl));
  for (const io::GgufTensorInfo& info : weights.tensors()) writer.add_tensor(info.name, weights.tensor(info.name));
  writer.write(dir.path("tiny.gguf"));
  return dir.path("tiny.gguf");
}

const std::regex kStatsLine(
    R"(anvil: prefill (\d+) tokens in [0-9.]+ s \([0-9.]+ tokens/s\), decode (\d+) tokens in [0-9.]+ s \([0-9.]+ tokens/s\), stop: ([a-z ]+)\n)");

TEST(CliGenerate, StreamsTextAndReportsSpeedOnATinyModel) {
  Rng rng(test_seed());
  const TempDir dir;
  const std::string model = write_tiny_gguf(dir, rng);
  const CliResult result =
      run_cli(dir, {"generate", "-m", model, "-p", "hello world", "-n", "12", "--seed", "7", "--ignore-eos"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(result.err, match, kStatsLine)) << result.err;
  EXPECT_EQ(match[2].str(), "12");
  EXPECT_EQ(match[3].str(), "max tokens");
  EXPECT_NE(result.err.find("anvil: loaded llama in"), std::string::npos) << result.err;
  ASSERT_FALSE(result.out.empty());
  EXPECT_EQ(result.out.back(), '\n');

  // Seeded sampling reproduces itself; another seed gives another text.
  EXPECT_EQ(run_cli(dir, {"generate", "-m", model, "-p", "hello world", "-n", "12", "--seed", "7", "--ignore-eos"}).out,
            result.out);
  EXPECT_NE(run_cli(dir, {"generate", "-m", model, "-p", "hello world", "-n", "12", "--seed", "8", "--ignore-eos",
                          "--temperature", "2"})
                .out,
            result.out);
}

TEST(CliGenerate, GreedyOutputEqualsTheLibraryGenerator) {
  Rng rng(test_seed());
  const TempDir dir;
  const std::string model = write_tiny_gguf(dir, rng);
  for (const bool chat : {false, true}) {
    std::vector<std::string> args = {"generate", "-m", model,           "-p", "The cat",
                                     "-n",       "10", "--temperature", "0",  "--ignore-eos"};
    if (chat) args.emplace_back("--chat");
    const CliResult result = run_cli(dir, args);
    ASSERT_EQ(result.exit_code, 0) << result.err;

    Ctx& ctx = test_ctx();
    const auto lm = model::load_causal_lm(ctx, model);
    const auto tokenizer = tokenizer::BpeTokenizer::from_gguf_file(model);
    const std::string prompt =
        chat ? std::string("<|im_start|>user\nThe cat<|im_end|>\n<|im_start|>assistant\n") : std::string("The cat");
    infer::Generator generator(ctx, *lm, tokenizer, infer::GeneratorOptions{128, 16, 512, DType::F32});
    infer::GenerationParams params;
    params.max_tokens = 10;
    params.sampler.temperature = 0.0F;
    const infer::GenerationResult expected = generator.generate(tokenizer.encode(prompt), params);
    EXPECT_EQ(result.out, expected.text + "\n") << (chat ? "with --chat" : "plain");
  }
}

TEST(CliPerplexity, ReportsPerChunkProgressAndTheFinalValue) {
  Rng rng(test_seed());
  const TempDir dir;
  const std::string model = write_tiny_gguf(dir, rng);
  std::ofstream(dir.path("text.txt")) << "The quick brown fox jumps over the lazy dog. "
                                      << "It was the best of times, "
                                      << "it was the worst of times, it was the age of wisdom, it was the age of "
                                      << "foolishness. Call me Ishmael. Some years ago, never mind how long precisely.";
  const CliResult result = run_cli(dir, {"perplexity", "-m", model, "-f", dir.path("text.txt"), "-c", "16"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(std::regex_search(result.err, std::regex(R"(\[1/\d+\] ppl [0-9.]+)"))) << result.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(result.out, match, std::regex(R"(PPL = ([0-9.]+) \+/- ([0-9.]+) \((\d+) chunks)")))
      << result.out;
  // A random model over ~1000 tokens: perplexity far above 1, finite.
  EXPECT_GT(std::stod(match[1].str()), 10.0);
  EXPECT_GT(std::stod(match[2].str()), 0.0);
}

TEST(CliChat, KeepsTheConversationAndHandlesCommands) {
  Rng rng(test_seed());
  const TempDir dir;
  const std::string model = write_tiny_gguf(dir, rng);
  const CliResult result = run_cli(dir, {"chat", "-m", model, "-n", "6", "--temperature", "0"},
                                   "hello\nhow are you?\n/reset\n/bogus\nhello\n/exit\nnot read\n");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // Three replies, each with its statistics line; the first after /reset equals the first.
  EXPECT_EQ(
      std::distance(std::sregex_iterator(result.err.begin(), result.err.end(), kStatsLine), std::sregex_iterator()), 3)
      << result.err;
  // The first reply, computed with the library; the reply after /reset is the same again.
  Ctx& ctx = test_ctx();
  const auto lm = model::load_causal_lm(ctx, model);
  const auto tokenizer = tokenizer::BpeTokenizer::from_gguf_file(model);
  infer::Generator generator(ctx, *lm, tokenizer, infer::GeneratorOptions{128, 16, 512, DType::F32});
  infer::GenerationParams params;
  params.max_tokens = 6;
  params.sampler.temperature = 0.0F;
  for (const char* stop : {"<|im_end|>", "<|endoftext|>"}) params.stop_tokens.push_back(*tokenizer.find_token(stop));
  const std::string reply =
      generator.generate(tokenizer.encode("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n"), params).text;
  EXPECT_EQ(result.out.rfind("> " + reply + "\n> ", 0), 0U) << result.out;
  EXPECT_NE(result.out.find("> (new conversation)\n> unknown command /bogus; commands: /reset (start a new "
                            "conversation), /exit (quit)\n> " +
                            reply + "\n> \n"),
            std::string::npos)
      << result.out;
}

TEST(CliErrors, BadPathsAndArgumentsExitWithCodeOne) {
  Rng rng(test_seed());
  const TempDir dir;
  const std::string model = write_tiny_gguf(dir, rng);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"generate", "-m", dir.path("missing.gguf"), "-p", "x"}, "does not exist"},
      {{"generate", "-m", kTokenizer, "-p", "x"}, "error"},  // a GGUF without a model
      {{"generate", "-p", "x"}, "--model is required"},
      {{"generate", "-m", model, "-p", "x", "--top-p", "2"}, "--top-p"},
      {{"generate", "-m", model, "-p", "x", "-n", "abc"}, "--max-tokens: Value abc not in range"},
      {{"generate", "-m", model, "-p", "x", "--ctx-size", "100000"}, "larger than the model's context"},
      {{"generate", "-m", model, "-p", "x", "--temperature", "-1"}, "--temperature"},
      {{"generate", "-m", model, "-p", "x", "--kv-dtype", "q4_0"}, "--kv-dtype"},
      {{"generate", "-m", model, "-p", "x", "--chat", "--ctx-size", "8", "-n", "4"}, "more than the context size"},
      {{"perplexity", "-m", model, "-f", dir.path("missing.txt")}, "does not exist"},
      {{"chat", "-m", kSource}, "error"},
      {{"no-such-command"}, "subcommand"},
  };
  for (const auto& [args, message] : cases) {
    const CliResult result = run_cli(dir, args);
    EXPECT_EQ(result.exit_code, 1) << args[0] << " " << args.back() << ": " << result.err;
    EXPECT_NE(result.err.find(message), std::string::npos) << message << " not in: " << result.err;
  }
}

TEST(CliGenerate, RealSmolLm2InChatMode) {
  if (!std::filesystem::exists(kSmolLm2)) GTEST_SKIP() << kSmolLm2 << " not present";
  const TempDir dir;
  const CliResult result = run_cli(dir, {"generate", "-m", kSmolLm2, "--chat", "-p", "What is the capital of France?",
                                         "-n", "16", "--temperature", "0", "--ignore-eos"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(result.err, match, kStatsLine)) << result.err;
  // The GGUF's Jinja template adds SmolLM2's default system message: 37 prompt tokens, as
  // llama.cpp's reference renders it (tests/fixtures/smollm2/greedy.json, chat_capital).
  EXPECT_EQ(match[1].str(), "37");
  EXPECT_EQ(match[2].str(), "16");
  EXPECT_GT(result.out.size(), 16U);
  std::cout << "[ smollm2  ] " << result.err.substr(result.err.rfind("anvil: prefill"));
}

}  // namespace
}  // namespace anvil::testing
