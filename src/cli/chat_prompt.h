#pragma once
// Chat prompts: a conversation rendered with the model's own chat template.
#include <string>
#include <vector>

#include "loaded_model.h"

namespace anvil::cli {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

class ChatPrompt {
 public:
  // The model's chat template; throws anvil::Error when the model has none, or when it is
  // not one this build can render.
  explicit ChatPrompt(const LoadedModel& loaded);

  // The prompt text for `messages`, ending with the assistant's turn opening when
  // `add_generation_prompt`.
  [[nodiscard]] std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // How the template is rendered, for the log.
  [[nodiscard]] const std::string& description() const { return description_; }

 private:
  std::string description_;
};

}  // namespace anvil::cli
