#include "anvil/tokenizer/chat_template.h"

#include "anvil/core/error.h"
#include "ast.h"
#include "interpreter.h"
#include "parser.h"

namespace anvil::tokenizer {

ChatTemplate::ChatTemplate(std::string_view source)
    : template_(std::make_shared<const jinja::Template>(jinja::parse_template(source))) {}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(const ChatTemplate&) = default;
ChatTemplate& ChatTemplate::operator=(const ChatTemplate&) = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

std::string ChatTemplate::render(const nlohmann::ordered_json& context, const ChatTemplateOptions& options) const {
  if (!context.is_object()) throw make_error("chat template: the render context must be a JSON object");
  ANVIL_CHECK(options.max_depth > 0 && options.max_steps > 0, "chat template: limits must be positive");
  const jinja::Value variables = jinja::from_json(context);
  jinja::Interpreter interpreter(options);
  return interpreter.render(*template_, variables);
}

std::string ChatTemplate::render(const nlohmann::json& context, const ChatTemplateOptions& options) const {
  return render(nlohmann::ordered_json(context), options);
}

nlohmann::ordered_json ChatTemplate::make_context(const ChatTemplateInputs& inputs) {
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  context["messages"] = inputs.messages;
  context["tools"] = inputs.tools;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = inputs.add_generation_prompt;
  context["bos_token"] = inputs.bos_token;
  context["eos_token"] = inputs.eos_token;
  if (!inputs.extra.is_null()) {
    if (!inputs.extra.is_object()) throw make_error("chat template: extra variables must be a JSON object");
    for (const auto& [key, value] : inputs.extra.items()) context[key] = value;
  }
  return context;
}

std::string ChatTemplate::apply(const ChatTemplateInputs& inputs, const ChatTemplateOptions& options) const {
  return render(make_context(inputs), options);
}

}  // namespace anvil::tokenizer
