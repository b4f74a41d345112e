// ChatPrompt: the model's Jinja chat template, rendered as transformers' apply_chat_template
// does (with the tokenizer's BOS and EOS token text).
#include "chat_prompt.h"

#include "anvil/core/error.h"

namespace anvil::cli {
namespace {

std::string token_text(const tokenizer::Tokenizer& tokenizer, std::optional<int32_t> id) {
  return id ? std::string(tokenizer.token_bytes(*id)) : std::string();
}

}  // namespace

ChatPrompt::ChatPrompt(const LoadedModel& loaded)
    : template_(loaded.chat_template ? *loaded.chat_template
                                     : throw make_error("the model has no chat template (run without --chat)")),
      bos_token_(token_text(*loaded.tokenizer, loaded.tokenizer->bos_id())),
      eos_token_(token_text(*loaded.tokenizer, loaded.tokenizer->eos_id())) {}

std::string ChatPrompt::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  tokenizer::ChatTemplateInputs inputs;
  for (const ChatMessage& message : messages) {
    inputs.messages.push_back({{"role", message.role}, {"content", message.content}});
  }
  inputs.add_generation_prompt = add_generation_prompt;
  inputs.bos_token = bos_token_;
  inputs.eos_token = eos_token_;
  return template_.apply(inputs);
}

}  // namespace anvil::cli
