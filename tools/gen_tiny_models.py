"""Makes tiny random-weight models of every supported architecture with `transformers`
and the logits it computes for fixed prompts: the fixtures anvil's model tests compare
against (tests/fixtures/models/<name>/). Runs where torch exists (the GPU machine):

    python3 tools/gen_tiny_models.py OUT_DIR

Each model folder holds config.json and model.safetensors (save_pretrained) and
expected.safetensors with input_ids_<i> (int64, (T,)) and logits_<i> (float32, (T, V))
for each prompt, computed in float32 with eager attention on the CPU.
"""
import json
import pathlib
import sys

import torch
import transformers
from safetensors.torch import save_file

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
              rms_norm_eps=1e-5, tie_word_embeddings=False)

MODELS = {
    "llama2": (transformers.LlamaConfig, transformers.LlamaForCausalLM, dict(COMMON, rope_theta=10000.0)),
    "llama3": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
               dict(COMMON, rope_theta=500000.0, max_position_embeddings=128,
                    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                      original_max_position_embeddings=16))),
    "smollm2": (transformers.LlamaConfig, transformers.LlamaForCausalLM,
                dict(COMMON, num_attention_heads=4, num_key_value_heads=1, rope_theta=100000.0,
                     tie_word_embeddings=True)),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM,
                dict(COMMON, sliding_window=8, rope_theta=10000.0)),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM,
              dict(COMMON, rope_theta=1000000.0, tie_word_embeddings=True)),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM,
              dict(COMMON, head_dim=16, rope_theta=1000000.0)),
    "gpt2": (transformers.GPT2Config, transformers.GPT2LMHeadModel,
             dict(vocab_size=256, n_embd=64, n_layer=2, n_head=4, n_positions=128, n_inner=None,
                  layer_norm_epsilon=1e-5, activation_function="gelu_new", bos_token_id=0, eos_token_id=0)),
}

PROMPT_LENGTHS = (1, 7, 24)


def make_model(name, config_cls, model_cls, kwargs, out_dir):
    torch.manual_seed(sum(map(ord, name)))
    config = config_cls(**kwargs)
    config._attn_implementation = "eager"
    model = model_cls(config).float().eval()
    # Default inits are tiny (std 0.02): widen them so logits differ clearly between tokens.
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.3 if "emb" in param_name or "wte" in param_name or "wpe" in param_name else 0.12)
            elif "bias" in param_name:
                param.normal_(0.0, 0.1)
            else:
                param.uniform_(0.7, 1.3)
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    generator = torch.Generator().manual_seed(1234)
    expected = {}
    for index, length in enumerate(PROMPT_LENGTHS):
        ids = torch.randint(0, config.vocab_size, (length,), generator=generator)
        with torch.no_grad():
            logits = model(ids[None, :]).logits[0].float()
        expected[f"input_ids_{index}"] = ids.to(torch.int64).contiguous()
        expected[f"logits_{index}"] = logits.contiguous()
    save_file(expected, str(folder / "expected.safetensors"))
    print(name, sum(p.numel() for p in model.parameters()), "params", flush=True)


def main():
    out_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/models")
    print("transformers", transformers.__version__, "torch", torch.__version__)
    for name, (config_cls, model_cls, kwargs) in MODELS.items():
        make_model(name, config_cls, model_cls, kwargs, out_dir)
    (out_dir / "VERSIONS.json").write_text(json.dumps(
        {"transformers": transformers.__version__, "torch": torch.__version__}, indent=1) + "\n")


if __name__ == "__main__":
    main()
