"""Writes the SentencePiece-style BPE tokenizer fixtures in tests/fixtures/tokenizer/.

A small BPE model with byte fallback is trained here with the `sentencepiece` package, Llama 2
style (identity normalization, add_dummy_prefix, no whitespace collapsing, split digits,
whitespace-only pieces, byte fallback), with the user-defined symbol <tool>. It is then written:

  small_spm.gguf            GGUF metadata as llama.cpp's convert_hf_to_gguf writes a "llama"
                            vocabulary: tokens, scores, token types (NORMAL, UNKNOWN, CONTROL,
                            USER_DEFINED, BYTE), BOS/EOS/UNK ids, add_bos, add_space_prefix.
  small_spm_llama2.json     HF tokenizer.json as Llama 2 / Mistral ship it (LlamaTokenizerFast,
                            legacy): normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer,
                            BPE with byte_fallback and merges, decoder Replace/ByteFallback/Fuse/Strip,
                            a TemplateProcessing post-processor adding <s>. Built with `tokenizers`.
  small_spm_metaspace.json  what `transformers` (v5) converts the same model to: no normalizer, a
                            Metaspace(prepend_scheme "first", split false) pre-tokenizer.
  spm_cases.json            texts and their ids from sentencepiece itself and from `tokenizers`
                            with each JSON file, ids with BOS, decoded texts, ill-formed UTF-8
                            cases, and ids for variants of the JSON files (text replacements that
                            switch Metaspace's prepend_scheme / split, ignore_merges, byte_fallback).

The C++ test (tests/tokenizer/spm_tokenizer_test.cpp) must reproduce every id.
Needs: pip install sentencepiece tokenizers gguf transformers protobuf
(versions used: sentencepiece 0.2.3, tokenizers 0.23.3, gguf 0.19.0, transformers 5.23.0).
Run:   python tools/gen_spm_tokenizer_fixtures.py
"""
import json
import os
import pathlib
import random
import tempfile

import gguf
import sentencepiece as spm
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
VOCAB_SIZE = 2000
USER_DEFINED = ["<tool>"]
SPECIAL_TEXTS = ["<s>", "</s>", "<unk>"] + USER_DEFINED

# Texts on top of the byte-level fixture corpus: what SentencePiece treats specially.
EXTRA_TEXTS = [
    "Hello",
    " Hello",
    "  Hello  ",
    "Hello\n",
    "\nHello",
    "▁already▁escaped ▁ and ▁▁ spaces",
    "a\u2581\u2581b",
    "x" * 70 + " " + "yz" * 40,
    "    four spaces, then eight        and a tab\tend",
    "def f():\n    return 1\n\n\n    # comment\n",
    "Numbers 1234567 and 3.14 and 10,000",
    "Rare characters fall back to bytes: \u16a0\u16a1 \U0001f9ec \u0f00 \u2c00 \ua500 \U00010330",
    "<s>Hello</s> world",
    "<s> Hello</s>",
    "Hello<s>world</s>",
    "a <tool> b<tool>c <tool>",
    "<tool>x",
    "<unk> and <unk><unk>",
    "<s",
    "</s",
    "<<s>>",
]

FUZZ_POOL = (list("abcXYZ") + list("0123") + list(" " * 10) + ["\t", "\n", "\r", "\u00a0", "\u3000", "\u2581"]
             + list(".,!?;:-_()[]{}<>\"'/\\@#$%^&*+=|~`") + list("éÉßøΩωЖж") + list("中文日本한국")
             + ["\u0301", "\u093f", "\u16a0", "\U0001f600", "\U0001f44d", "\U0001f3fd", "\u200d", "\ufe0f"]
             + SPECIAL_TEXTS)


def training_text(texts):
    licenses = [pathlib.Path("/usr/share/common-licenses", name).read_text(encoding="utf-8")
                for name in ("GPL-3", "Apache-2.0")]
    return "\n".join(texts * 3 + licenses)


def train(texts, directory):
    """Trains the model (deterministic: one thread, whole corpus) and returns its path."""
    corpus = pathlib.Path(directory, "corpus.txt")
    corpus.write_text(training_text(texts), encoding="utf-8")
    prefix = str(pathlib.Path(directory, "tokenizer"))
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=prefix, vocab_size=VOCAB_SIZE, model_type="bpe", byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.9995, num_threads=1,
        user_defined_symbols=USER_DEFINED, max_sentence_length=100000, minloglevel=2)
    return prefix + ".model"


def pieces_of(processor):
    """(piece, score, gguf token type) per id, as llama.cpp's _create_vocab_sentencepiece reads them."""
    result = []
    for index in range(processor.get_piece_size()):
        kind = gguf.TokenType.NORMAL
        if processor.is_unknown(index):
            kind = gguf.TokenType.UNKNOWN
        elif processor.is_control(index):
            kind = gguf.TokenType.CONTROL
        elif processor.is_unused(index):
            kind = gguf.TokenType.UNUSED
        elif processor.is_byte(index):
            kind = gguf.TokenType.BYTE
        elif processor.id_to_piece(index) in USER_DEFINED:
            kind = gguf.TokenType.USER_DEFINED
        result.append((processor.id_to_piece(index), processor.get_score(index), kind))
    return result


def write_gguf(path, pieces):
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([piece for piece, _, _ in pieces])
    writer.add_token_scores([score for _, score, _ in pieces])
    writer.add_token_types([kind for _, _, kind in pieces])
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def llama2_merges(pieces):
    """Merges as the original SentencePieceExtractor of transformers (v4) derives them: every split of
    a piece into two pieces, ordered by the merged piece's score (best first), then by the halves' ids."""
    vocab = {piece: index for index, (piece, _, _) in enumerate(pieces)}
    merges = []
    for piece, score, _ in pieces:
        local = [(piece[:cut], piece[cut:], score) for cut in range(1, len(piece))
                 if piece[:cut] in vocab and piece[cut:] in vocab]
        merges.extend(sorted(local, key=lambda merge: (vocab[merge[0]], vocab[merge[1]])))
    merges.sort(key=lambda merge: merge[2], reverse=True)
    return vocab, [(left, right) for left, right, _ in merges]


def llama2_json(pieces):
    vocab, merges = llama2_merges(pieces)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(content=" ", left=1)])
    tokenizer.add_special_tokens([AddedToken(piece, normalized=False, special=True) for piece in ("<unk>", "<s>", "</s>")])
    tokenizer.add_tokens([AddedToken(piece, normalized=False, special=False) for piece in USER_DEFINED])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", 1)])
    return tokenizer


def metaspace_json(model_path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import LlamaTokenizer  # noqa: PLC0415 (slow import, only needed here)
    with tempfile.TemporaryDirectory() as directory:
        (pathlib.Path(directory) / "tokenizer.model").write_bytes(pathlib.Path(model_path).read_bytes())
        converted = LlamaTokenizer.from_pretrained(directory)
    config = json.loads(converted.backend_tokenizer.to_str())
    assert config["pre_tokenizer"]["type"] == "Metaspace" and config["normalizer"] is None, config["pre_tokenizer"]
    return Tokenizer.from_str(json.dumps(config))


# Variants the test derives from the committed files by text replacement: (base file, replacements).
VARIANTS = {
    "metaspace_always_split": ("small_spm_metaspace.json", [['"prepend_scheme":"first","split":false',
                                                             '"prepend_scheme":"always","split":true']]),
    "metaspace_always_split_ignore_merges": ("small_spm_metaspace.json", [
        ['"prepend_scheme":"first","split":false', '"prepend_scheme":"always","split":true'],
        ['"ignore_merges":false', '"ignore_merges":true']]),
    "llama2_ignore_merges": ("small_spm_llama2.json", [['"ignore_merges":false', '"ignore_merges":true']]),
    "llama2_no_byte_fallback": ("small_spm_llama2.json", [['"byte_fallback":true', '"byte_fallback":false']]),
}


def variant_ids(tokenizers, texts):
    result = {}
    for name, (base, replacements) in VARIANTS.items():
        text = tokenizers[base].to_str()
        for old, new in replacements:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        variant = Tokenizer.from_str(text)
        result[name] = {"base": base, "replacements": replacements,
                        "ids": [variant.encode(t, add_special_tokens=False).ids for t in texts]}
    return result


def fuzz_texts(rng, count):
    return ["".join(rng.choice(FUZZ_POOL) for _ in range(rng.randint(1, 40))) for _ in range(count)]


def invalid_utf8_cases(tokenizer, rng):
    """Byte strings with ill-formed UTF-8 and the ids of text.decode(errors="replace")."""
    bad = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80\x80", b"\xfe\xfe\xff"]
    cases = []
    for chunk in bad:
        raw = rng.choice([b"abc", b" Hello", b"x", "déjà".encode()]) + chunk + rng.choice([b"def", b" World", b""])
        cases.append({"hex": raw.hex(), "replace": tokenizer.encode(raw.decode("utf-8", "replace"),
                                                                    add_special_tokens=False).ids})
    return cases


def main():
    rng = random.Random(2345)
    base_texts = json.loads((OUT / "cases.json").read_text(encoding="utf-8"))["texts"]
    texts = base_texts + EXTRA_TEXTS + fuzz_texts(rng, 200)
    with tempfile.TemporaryDirectory() as directory:
        model_path = train(base_texts + EXTRA_TEXTS, directory)
        processor = spm.SentencePieceProcessor(model_file=model_path)
        pieces = pieces_of(processor)
        assert [p for p, _, _ in pieces[:3]] == ["<unk>", "<s>", "</s>"], pieces[:4]
        write_gguf(OUT / "small_spm.gguf", pieces)
        tokenizers = {"small_spm_llama2.json": llama2_json(pieces), "small_spm_metaspace.json": metaspace_json(model_path)}
        # sentencepiece does not cut special or user-defined tokens out of the text first.
        plain = [index for index, text in enumerate(texts) if not any(s in text for s in SPECIAL_TEXTS)]
        cases = {
            "texts": texts,
            "sentencepiece": {"indices": plain, "ids": [processor.encode(texts[index]) for index in plain]},
            "encodings": {name: [tok.encode(text, add_special_tokens=False).ids for text in texts]
                          for name, tok in tokenizers.items()},
            "with_bos": {"small_spm_llama2.json": [tokenizers["small_spm_llama2.json"].encode(t).ids
                                                   for t in texts[:12]]},
            "decode": {"small_spm_llama2.json": [tokenizers["small_spm_llama2.json"].decode(
                tokenizers["small_spm_llama2.json"].encode(t).ids, skip_special_tokens=False) for t in texts]},
            "invalid_utf8": invalid_utf8_cases(tokenizers["small_spm_llama2.json"], rng),
            "variants": variant_ids(tokenizers, texts),
        }
    for name, tok in tokenizers.items():
        (OUT / name).write_text(tok.to_str(), encoding="utf-8")
    (OUT / "spm_cases.json").write_text(json.dumps(cases, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    agree = sum(cases["encodings"]["small_spm_llama2.json"][i] == ids
                for i, ids in zip(plain, cases["sentencepiece"]["ids"]))
    print(f"sentencepiece and the Llama 2 tokenizer.json agree on {agree} of {len(plain)} texts")
    for path in sorted(OUT.glob("*spm*")):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
