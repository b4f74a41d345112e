// Chat templates: the real templates of each supported family rendered over many conversations
// and compared byte for byte with jinja2 configured like transformers
// (tools/gen_chat_template_fixtures.py), expression-language snippets checked the same way,
// error reporting, resource limits, and random mutations that must never crash.
#include "anvil/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <ctime>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <string>

#include "anvil/core/error.h"
#include "support/op_harness.h"

namespace anvil::tokenizer {
namespace {

using nlohmann::ordered_json;

const std::string kFixtures = std::string(ANVIL_SOURCE_DIR) + "/tests/fixtures/chat_templates/";
const std::vector<std::string> kFamilies = {"smollm2",     "llama2",      "llama3",  "llama3_1", "llama3_2",
                                            "mistral_v01", "mistral_v03", "qwen2_5", "qwen3"};

std::string read_text(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw std::runtime_error("missing fixture " + path);
  return {std::istreambuf_iterator<char>(stream), std::istreambuf_iterator<char>()};
}

ordered_json read_json(const std::string& path) { return ordered_json::parse(read_text(path)); }

// The generator's clock: 2024-09-26 10:30:00, a Thursday.
ChatTemplateOptions fixed_clock() {
  ChatTemplateOptions options;
  options.strftime_now = [](const std::string& format) {
    std::tm time{};
    time.tm_year = 2024 - 1900;
    time.tm_mon = 8;
    time.tm_mday = 26;
    time.tm_hour = 10;
    time.tm_min = 30;
    time.tm_wday = 4;
    time.tm_yday = 269;
    char buffer[256];
    const size_t length = std::strftime(buffer, sizeof buffer, format.c_str(), &time);
    return std::string(buffer, length);
  };
  return options;
}

// Renders one fixture case and compares with jinja2's result (text, or an error).
void check_case(const ChatTemplate& chat_template, const ordered_json& test_case, const std::string& label) {
  if (test_case.contains("expected")) {
    std::string rendered;
    try {
      rendered = chat_template.render(test_case.at("context"), fixed_clock());
    } catch (const Error& error) {
      ADD_FAILURE() << label << ": unexpected error: " << error.what();
      return;
    }
    EXPECT_EQ(rendered, test_case.at("expected").get<std::string>()) << label;
    return;
  }
  const auto& expected_error = test_case.at("error");
  try {
    const std::string rendered = chat_template.render(test_case.at("context"), fixed_clock());
    ADD_FAILURE() << label << ": expected " << expected_error.dump() << ", rendered " << rendered;
  } catch (const Error& error) {
    if (expected_error.at("type") == "TemplateError") {  // raise_exception: the message must survive
      EXPECT_NE(std::string(error.what()).find(expected_error.at("message").get<std::string>()), std::string::npos)
          << label << ": " << error.what();
    }
  }
}

TEST(ChatTemplate, RendersEveryFamilyLikeTransformers) {
  std::map<std::string, ChatTemplate> templates;
  for (const std::string& family : kFamilies) {
    templates.emplace(family, ChatTemplate(read_text(kFixtures + family + ".jinja")));
  }
  const ordered_json cases = read_json(kFixtures + "renders.json");
  std::map<std::string, int> rendered_per_family;
  int errors = 0;
  for (const auto& test_case : cases) {
    const std::string family = test_case.at("template");
    ASSERT_TRUE(templates.count(family)) << family;
    check_case(templates.at(family), test_case, family + "/" + test_case.at("conversation").get<std::string>());
    rendered_per_family[family] += test_case.contains("expected") ? 1 : 0;
    errors += test_case.contains("error") ? 1 : 0;
  }
  for (const std::string& family : kFamilies) EXPECT_GE(rendered_per_family[family], 8) << family;
  EXPECT_GE(errors, 5);  // raise_exception paths of Llama 2/3.x and Mistral are covered
}

TEST(ChatTemplate, ExpressionSnippetsMatchJinja2) {
  const ordered_json cases = read_json(kFixtures + "snippets.json");
  ASSERT_GE(cases.size(), 30U);
  for (const auto& test_case : cases) {
    const std::string name = test_case.at("name");
    try {
      const ChatTemplate chat_template(test_case.at("template").get<std::string>());
      check_case(chat_template, test_case, name);
    } catch (const Error& error) {
      ADD_FAILURE() << name << ": parse error " << error.what();
    }
  }
}

TEST(ChatTemplate, ApplyPassesWhatTransformersPasses) {
  const ordered_json cases = read_json(kFixtures + "renders.json");
  int checked = 0;
  for (const auto& test_case : cases) {
    if (!test_case.contains("expected")) continue;
    const ordered_json& context = test_case.at("context");
    ChatTemplateInputs inputs;
    inputs.messages = context.at("messages");
    inputs.tools = context.at("tools");
    inputs.add_generation_prompt = context.at("add_generation_prompt");
    inputs.bos_token = context.at("bos_token");
    inputs.eos_token = context.at("eos_token");
    for (const auto& [key, value] : context.items()) {
      if (key != "messages" && key != "tools" && key != "documents" && key != "add_generation_prompt" &&
          key != "bos_token" && key != "eos_token") {
        inputs.extra[key] = value;
      }
    }
    const ChatTemplate chat_template(read_text(kFixtures + test_case.at("template").get<std::string>() + ".jinja"));
    EXPECT_EQ(chat_template.apply(inputs, fixed_clock()), test_case.at("expected").get<std::string>());
    ++checked;
  }
  EXPECT_GT(checked, 100);
}

TEST(ChatTemplate, SmolLM2PromptIsChatML) {
  const ChatTemplate chat_template(read_text(kFixtures + "smollm2.jinja"));
  ChatTemplateInputs inputs;
  inputs.messages = ordered_json::array({{{"role", "user"}, {"content", "Hi"}}});
  inputs.add_generation_prompt = true;
  EXPECT_EQ(chat_template.apply(inputs),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, SortedJsonContextAndCopies) {
  const ChatTemplate original("{{ d|tojson }} {{ n + 1 }}");
  const ChatTemplate copy = original;  // NOLINT(performance-unnecessary-copy-initialization)
  const nlohmann::json context = {{"d", {{"b", 1}, {"a", 2}}}, {"n", 41}};
  EXPECT_EQ(copy.render(context), "{\"a\": 2, \"b\": 1} 42");
  EXPECT_THROW((void)original.render(nlohmann::json::array()), Error);
}

TEST(ChatTemplate, SystemClockIsUsedWithoutAnInjectedOne) {
  const ChatTemplate chat_template("{{ strftime_now('%Y') }}");
  const std::string year = chat_template.render(ordered_json::object());
  ASSERT_EQ(year.size(), 4U);
  EXPECT_GE(std::stoi(year), 2024);
}

// ---- errors ----

std::string error_of(const std::string& source, const ordered_json& context = ordered_json::object()) {
  try {
    (void)ChatTemplate(source).render(context);
  } catch (const Error& error) {
    return error.what();
  }
  return "(no error)";
}

void expect_error(const std::string& source, const std::vector<std::string>& fragments,
                  const ordered_json& context = ordered_json::object()) {
  const std::string message = error_of(source, context);
  for (const std::string& fragment : fragments) {
    EXPECT_NE(message.find(fragment), std::string::npos) << source << "\n  -> " << message;
  }
}

TEST(ChatTemplateErrors, UnknownFilterAndTestNameTheConstructAndPosition) {
  expect_error("ab\n{{ x | nosuch }}", {"unknown filter 'nosuch'", "2:8"});
  expect_error("{% if x is nosuch %}{% endif %}", {"unknown test 'nosuch'", "1:12"});
  expect_error("{{ [1]|map('nosuch')|list }}", {"unknown filter 'nosuch'"});
}

TEST(ChatTemplateErrors, UnclosedBlocksNameTheOpeningTag) {
  expect_error("x\n  {% if a %}abc", {"unclosed 'if'", "2:6", "endif"});
  expect_error("{% for m in messages %}{% if m %}{% endfor %}", {"unexpected '{% endfor %}'"});
  expect_error("{% macro f() %}", {"unclosed 'macro'"});
  expect_error("{{ 1 + 2", {"unclosed '{{'"});
  expect_error("{% if true", {"unclosed '{%'"});
  expect_error("{# never closed", {"missing end of comment"});
  expect_error("{% raw %}abc", {"missing end of raw"});
}

TEST(ChatTemplateErrors, RaiseExceptionCarriesTheMessage) {
  expect_error("line one\n{{ raise_exception('Only user and assistant roles are supported!') }}",
               {"Only user and assistant roles are supported!", "2:"});
}

TEST(ChatTemplateErrors, UnsupportedConstructsAreNamed) {
  expect_error("{% include 'x.jinja' %}", {"unsupported construct", "include", "1:4"});
  expect_error("{% extends 'base' %}", {"unsupported construct", "extends"});
  expect_error("{% for x in y recursive %}{% endfor %}", {"recursive"});
  expect_error("{% frobnicate %}", {"unknown tag 'frobnicate'"});
  expect_error("{{ f(*args) }}", {"*args"});
  expect_error("{% break %}", {"outside of a loop"});
  expect_error("{{ {1: 2} }}", {"dict keys must be strings"});
}

TEST(ChatTemplateErrors, RuntimeErrorsNameThePosition) {
  expect_error("{{ 'a' + 1 }}", {"1:8", "unsupported operand"});
  expect_error("{{ messages[0].role }}", {"is undefined"});
  expect_error("{% set x = 1 %}{% set x.y = 2 %}", {"non-namespace"});
  expect_error("{{ 5 is divisibleby }}", {"needs an argument"});
  expect_error("{{ 'x'.split('') }}", {"empty separator"});
  expect_error("{{ range(10**6)|length }}", {"range too big"});
}

TEST(ChatTemplateErrors, MalformedTemplatesThrowInsteadOfCrashing) {
  const std::vector<std::string> bad = {
      "{{",
      "{{ }}",
      "{{ 1 + }}",
      "{% for %}",
      "{% for x %}",
      "{% for x in %}",
      "{% endif %}",
      "{% else %}",
      "{{ 'abc }}",
      "{{ (1 }}",
      "{{ ) }}",
      "{{ [1, 2 }}",
      "{% set %}",
      "{% set x %}",
      "{% macro %}",
      "{% macro f( %}",
      "{{ a. }}",
      "{{ a[ }}",
      "{{ 1 is }}",
      "{{ x | }}",
      "{% if %}{% endif %}",
      "{{ '\\x4' }}",
      "{{ 'a' 'b' + }}",
      "{% call x %}{% endcall %}",
      "{{ 99999999999999999999 }}",
      "{% with x %}{% endwith %}",
      "{{ not }}",
      "{{ a if }}",
      "{% elif x %}",
  };
  for (const std::string& source : bad)
    EXPECT_THROW((void)ChatTemplate(source).render(ordered_json::object()), Error) << source;
}

// ---- limits ----

TEST(ChatTemplateLimits, DeepNestingIsAnErrorNotACrash) {
  const int depth = 20000;
  EXPECT_THROW(ChatTemplate("{{ " + std::string(depth, '(') + "1" + std::string(depth, ')') + " }}"), Error);
  EXPECT_THROW(ChatTemplate("{{ " + std::string(depth, '[') + std::string(depth, ']') + " }}"), Error);
  EXPECT_THROW(ChatTemplate("{{ " + std::string(depth, '-') + "1 }}"), Error);
  std::string nested_ifs;
  for (int i = 0; i < depth; ++i) nested_ifs += "{% if true %}";
  EXPECT_THROW(ChatTemplate{nested_ifs}, Error);
  std::string nots = "{{ ";
  for (int i = 0; i < depth; ++i) nots += "not ";
  EXPECT_THROW(ChatTemplate(nots + "x }}"), Error);
  // Unbounded macro recursion hits the depth limit at render time.
  const ChatTemplate recursive("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_THROW((void)recursive.render(ordered_json::object()), Error);
}

TEST(ChatTemplateLimits, OutputAndValueSizesAreBounded) {
  ChatTemplateOptions options;
  options.max_output_bytes = 1 << 20;
  EXPECT_THROW((void)ChatTemplate("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}")
                   .render(ordered_json::object(), options),
               Error);
  EXPECT_THROW((void)ChatTemplate("{{ 'x' * 1000000000000 }}").render(ordered_json::object(), options), Error);
  EXPECT_THROW((void)ChatTemplate("{{ [1] * 1000000000000 }}").render(ordered_json::object(), options), Error);
  EXPECT_THROW((void)ChatTemplate("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                                  "{% endfor %}")
                   .render(ordered_json::object(), options),
               Error);
  // Under the limit the same kind of template renders.
  EXPECT_EQ(ChatTemplate("{{ 'ab' * 3 }}").render(ordered_json::object(), options), "ababab");
}

TEST(ChatTemplateLimits, StepBudgetStopsRunawayLoops) {
  ChatTemplateOptions options;
  options.max_steps = 1'000'000;
  const ChatTemplate nested("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  EXPECT_THROW((void)nested.render(ordered_json::object(), options), Error);
}

TEST(ChatTemplateLimits, NamespacesCannotGrowWithoutBound) {
  // A namespace that holds itself would be a reference cycle.
  expect_error("{% set ns = namespace(x=1) %}{% set ns.x = [ns] %}", {"namespace inside itself"});
  // Doubling shared structure 60 times: printing or comparing it must hit a limit, not hang.
  ChatTemplateOptions options;
  options.max_steps = 5'000'000;
  const ChatTemplate doubling(
      "{% set ns = namespace(x=[1]) %}{% for i in range(60) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}");
  EXPECT_THROW((void)doubling.render(ordered_json::object(), options), Error);
  const ChatTemplate deep("{% set ns = namespace(x=1) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}");
  EXPECT_THROW((void)deep.render(ordered_json::object(), options), Error);
}

TEST(ChatTemplateLimits, DeeplyNestedContextIsRejected) {
  ordered_json value = 1;
  for (int i = 0; i < 1000; ++i) value = ordered_json::array({std::move(value)});
  EXPECT_THROW((void)ChatTemplate("{{ v }}").render(ordered_json{{"v", value}}), Error);
}

// ---- robustness ----

// Random edits of the real templates and random message bytes: every outcome is a string or an
// anvil::Error, never a crash or another exception type.
TEST(ChatTemplateFuzz, MutatedTemplatesAndBytesNeverCrash) {
  testing::Rng rng(testing::test_seed());
  const ordered_json cases = read_json(kFixtures + "renders.json");
  const std::string alphabet = "{}%#-+()[]'\"|.:,=~*/\\ \n\tabcdefghijklmnopqrstuvwxyz0123456789_";
  ChatTemplateOptions options = fixed_clock();
  options.max_steps = 200'000;
  options.max_output_bytes = 1 << 20;
  int rendered = 0;
  for (int trial = 0; trial < 400; ++trial) {
    const auto& test_case = cases[rng() % cases.size()];
    std::string source = read_text(kFixtures + test_case.at("template").get<std::string>() + ".jinja");
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !source.empty(); ++e) {
      const size_t at = rng() % source.size();
      switch (rng() % 3) {
        case 0:
          source.erase(at, 1 + rng() % 8);
          break;
        case 1:
          source.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          source[at] = static_cast<char>(rng() % 256);
      }
    }
    ordered_json context = test_case.at("context");
    if (trial % 5 == 0) {
      std::string bytes;
      for (int i = 0; i < 16; ++i) bytes.push_back(static_cast<char>(rng() % 256));
      context["messages"] = ordered_json::array({{{"role", "user"}, {"content", bytes}}});
    }
    try {
      const ChatTemplate chat_template(source);
      (void)chat_template.render(context, options);
      ++rendered;
    } catch (const Error&) {
    } catch (const std::exception& other) {
      ADD_FAILURE() << "non-anvil exception: " << other.what() << "\n" << source;
    }
  }
  EXPECT_GT(rendered, 0);
}

TEST(ChatTemplateFuzz, InvalidUtf8RoundTripsThroughStringOperations) {
  const std::string bytes = "a\xff\xc3(b\xe2\x82";  // invalid and truncated sequences
  const ChatTemplate chat_template("{{ s }}|{{ s[::-1][::-1] }}|{{ s|length }}|{{ s.strip() }}|{{ s|upper|lower }}");
  EXPECT_EQ(chat_template.render(ordered_json{{"s", bytes}}),
            bytes + "|" + bytes + "|7|" + bytes + "|" + "a\xff\xc3(b\xe2\x82");
}

}  // namespace
}  // namespace anvil::tokenizer
