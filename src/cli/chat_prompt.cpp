// ChatPrompt: until the Jinja engine is in, templates detected as ChatML are rendered by
// a built-in ChatML formatter; any other template is a clear error.
#include "chat_prompt.h"

#include "anvil/core/error.h"

namespace anvil::cli {

ChatPrompt::ChatPrompt(const LoadedModel& loaded) {
  ANVIL_CHECK(loaded.chat_template.has_value(), "the model has no chat template (run without --chat)");
  const std::string& source = *loaded.chat_template;
  const bool chatml =
      source.find("<|im_start|>") != std::string::npos && source.find("<|im_end|>") != std::string::npos;
  ANVIL_CHECK(chatml, "the model's chat template is not ChatML, and this build renders only ChatML templates");
  description_ = "ChatML (built in)";
}

std::string ChatPrompt::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string text;
  for (const ChatMessage& message : messages) {
    text += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
  }
  if (add_generation_prompt) text += "<|im_start|>assistant\n";
  return text;
}

}  // namespace anvil::cli
