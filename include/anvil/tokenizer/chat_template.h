#pragma once
// Chat templates: the Jinja subset that Hugging Face models ship in tokenizer_config.json
// ("chat_template"), rendered the way transformers' apply_chat_template does
// (jinja2 ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, loop controls,
// `{% generation %}` blocks, tojson = json.dumps(ensure_ascii=False), raise_exception,
// strftime_now). The output is byte-identical to transformers for the supported subset;
// anything outside it is an anvil::Error naming the construct and its line:column.
//
// The template text is untrusted: parsing and rendering never crash, and the nesting depth,
// the evaluation steps and the size of every string built are bounded (ChatTemplateOptions).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace anvil::tokenizer {

namespace jinja {
struct Template;
}

// Limits and hooks for one render.
struct ChatTemplateOptions {
  size_t max_output_bytes = size_t{64} << 20;  // the rendered text, and any string or list built on the way
  int64_t max_steps = 50'000'000;              // expressions, statements and loop iterations evaluated
  int max_depth = 200;                         // nesting of expressions, blocks and macro calls
  // strftime_now(format) in templates: the current local time formatted like C strftime.
  // Tests inject a fixed clock; empty means the system clock.
  std::function<std::string(const std::string& format)> strftime_now;
};

// What transformers' apply_chat_template passes to a template.
struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // [{role, content, tool_calls?, ...}]
  nlohmann::ordered_json tools;  // a list of tool schemas, or null (transformers passes tools=None)
  bool add_generation_prompt = false;
  std::string bos_token;
  std::string eos_token;
  // More variables, e.g. {"enable_thinking": false}; they override the ones above.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // Parses `source`; throws anvil::Error with line:column on a syntax error or an unsupported construct.
  explicit ChatTemplate(std::string_view source);
  ~ChatTemplate();
  ChatTemplate(const ChatTemplate&);
  ChatTemplate& operator=(const ChatTemplate&);
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // Renders with the members of `context` (a JSON object) as the template's variables. Objects
  // keep their key order (it shows in tojson). Throws anvil::Error on a template error, on
  // raise_exception(message) (the message is in what()) and when a limit is exceeded.
  [[nodiscard]] std::string render(const nlohmann::ordered_json& context,
                                   const ChatTemplateOptions& options = {}) const;
  // Same, from a key-sorted nlohmann::json.
  [[nodiscard]] std::string render(const nlohmann::json& context, const ChatTemplateOptions& options = {}) const;

  // The context transformers builds: messages, tools, add_generation_prompt, bos/eos tokens, extras.
  [[nodiscard]] static nlohmann::ordered_json make_context(const ChatTemplateInputs& inputs);
  // Renders make_context(inputs).
  [[nodiscard]] std::string apply(const ChatTemplateInputs& inputs, const ChatTemplateOptions& options = {}) const;

 private:
  std::shared_ptr<const jinja::Template> template_;
};

}  // namespace anvil::tokenizer
