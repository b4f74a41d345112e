#pragma once
// Chat prompts: a conversation rendered with the model's own chat template (Jinja).
#include <string>
#include <vector>

#include "anvil/tokenizer/chat_template.h"
#include "loaded_model.h"

namespace anvil::cli {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class ChatPrompt {
 public:
  // The model's chat template; throws anvil::Error when the model has none, or when the
  // template does not parse (the message names the construct and its line:column).
  explicit ChatPrompt(const LoadedModel& loaded);

  // The prompt text for `messages`, ending with the assistant's turn opening when
  // `add_generation_prompt`.
  [[nodiscard]] std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

 private:
  tokenizer::ChatTemplate template_;
  std::string bos_token_;
  std::string eos_token_;
};

}  // namespace anvil::cli
