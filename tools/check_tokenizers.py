"""Checks anvil's tokenizers against Hugging Face `tokenizers` on >= 5 MB of mixed text, and
optionally measures encode throughput of both.

The text is assembled deterministically (from --seed) from what any Debian machine with the
project .venv has offline: Python's standard library sources (code), /usr/share/common-licenses
and /usr/share/doc (English prose), text synthesised with `unicodedata` in ~30 scripts, emoji
(modifiers, ZWJ sequences, flags, keycaps), whitespace runs of every kind, documents with random
ill-formed UTF-8 (HF gets bytes.decode("utf-8", errors="replace"); anvil gets the raw bytes and
InvalidUtf8::Replace), and mixed documents sprinkled with the vocabularies' special tokens.

Each document is encoded on its own with add_special_tokens=False by HF (the reference) and by
anvil_tokenize_tool (tests/tokenizer/tokenize_tool.cpp), for each vocabulary in CHECKS: the real
SmolLM2 one, Llama-3-, Qwen2- and GPT-2-style ones, and the SentencePiece BPE (Llama 2 and
Metaspace tokenizer.json, GGUF). Mismatches are printed with context; the exit status is 1 if
any, 0 otherwise. Registered as the ctest `tokenizer_reference_check` (label reference).

  python tools/check_tokenizers.py --tool build/tests/anvil_tokenize_tool [--megabytes 5.5]
  python tools/check_tokenizers.py --tool ... --bench    # + single-threaded MB/s, anvil vs HF
"""
import argparse
import array
import gzip
import hashlib
import os
import pathlib
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
import unicodedata

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "tokenizer"
MB = 1_000_000

# (file given to anvil, HF reference tokenizer.json, description)
CHECKS = [
    ("smollm2.json", "smollm2.json", "SmolLM2-135M (real vocabulary)"),
    ("small_llama3.json", "small_llama3.json", "Llama-3-style BPE"),
    ("small_qwen2.json", "small_qwen2.json", "Qwen2-style BPE (NFC)"),
    ("small_qwen2.gguf", "small_qwen2.json", "Qwen2-style BPE from GGUF"),
    ("small_gpt2.json", "small_gpt2.json", "GPT-2-style BPE"),
    ("small_spm_llama2.json", "small_spm_llama2.json", "SentencePiece BPE, Llama 2 tokenizer.json"),
    ("small_spm_metaspace.json", "small_spm_metaspace.json", "SentencePiece BPE, Metaspace tokenizer.json"),
    ("small_spm.gguf", "small_spm_llama2.json", "SentencePiece BPE from GGUF"),
]

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<s>", "</s>",
                  "<unk>", "[MASK]", "<tool>", "xyzzy"]

# name: (letter ranges, digit range or None, words separated by spaces, sentence end)
SCRIPTS = {
    "latin": ([(0x61, 0x7A), (0xC0, 0x24F)], None, True, "."),
    "latin_combining": ([(0x61, 0x7A), (0x300, 0x36F)], None, True, "."),
    "greek": ([(0x391, 0x3C9), (0x1F00, 0x1FFC)], None, True, ";"),
    "cyrillic": ([(0x400, 0x4FF)], None, True, "."),
    "armenian": ([(0x531, 0x587)], None, True, "։"),
    "hebrew": ([(0x5D0, 0x5EA), (0x5B0, 0x5BC)], None, True, "."),
    "arabic": ([(0x621, 0x64A), (0x64B, 0x652), (0x671, 0x6D3)], (0x660, 0x669), True, "؟"),
    "syriac": ([(0x710, 0x72C)], None, True, "."),
    "thaana": ([(0x780, 0x7B0)], None, True, "."),
    "devanagari": ([(0x905, 0x939), (0x93E, 0x94D)], (0x966, 0x96F), True, "।"),
    "bengali": ([(0x985, 0x9B9), (0x9BE, 0x9CD)], (0x9E6, 0x9EF), True, "।"),
    "gurmukhi": ([(0xA05, 0xA39), (0xA3E, 0xA4D)], (0xA66, 0xA6F), True, "।"),
    "gujarati": ([(0xA85, 0xAB9), (0xABE, 0xACD)], (0xAE6, 0xAEF), True, "."),
    "tamil": ([(0xB85, 0xBB9), (0xBBE, 0xBCD)], (0xBE7, 0xBEF), True, "."),
    "telugu": ([(0xC05, 0xC39), (0xC3E, 0xC4D)], (0xC66, 0xC6F), True, "."),
    "kannada": ([(0xC85, 0xCB9), (0xCBE, 0xCCD)], (0xCE6, 0xCEF), True, "."),
    "malayalam": ([(0xD05, 0xD39), (0xD3E, 0xD4D)], (0xD66, 0xD6F), True, "."),
    "sinhala": ([(0xD85, 0xDC6), (0xDCF, 0xDDF)], None, True, "."),
    "thai": ([(0xE01, 0xE30), (0xE31, 0xE3A), (0xE40, 0xE4E)], (0xE50, 0xE59), False, " "),
    "lao": ([(0xE81, 0xEB0), (0xEB1, 0xEBC)], (0xED0, 0xED9), False, " "),
    "tibetan": ([(0xF40, 0xF6A), (0xF71, 0xF84)], (0xF20, 0xF29), True, "།"),
    "myanmar": ([(0x1000, 0x102A), (0x102B, 0x1039)], (0x1040, 0x1049), False, "။"),
    "georgian": ([(0x10D0, 0x10FA)], None, True, "."),
    "hangul": ([(0xAC00, 0xD7A3)], None, True, "."),
    "ethiopic": ([(0x1200, 0x1248), (0x1250, 0x1256)], (0x1369, 0x1371), True, "።"),
    "cherokee": ([(0x13A0, 0x13F4)], None, True, "."),
    "canadian": ([(0x1401, 0x166C)], None, True, "᙮"),
    "runic": ([(0x16A0, 0x16EA)], None, True, "᛫"),
    "khmer": ([(0x1780, 0x17B3), (0x17B6, 0x17D2)], (0x17E0, 0x17E9), False, "។"),
    "mongolian": ([(0x1820, 0x1877)], (0x1810, 0x1819), True, "᠃"),
    "cjk": ([(0x4E00, 0x9FA5)], None, False, "。"),
    "japanese": ([(0x3041, 0x3094), (0x30A1, 0x30FA), (0x4E00, 0x6000)], None, False, "。"),
    "fullwidth": ([(0xFF21, 0xFF3A), (0xFF41, 0xFF5A)], (0xFF10, 0xFF19), True, "．"),
    "math": ([(0x1D400, 0x1D6A3)], (0x1D7CE, 0x1D7FF), True, "."),
    "gothic": ([(0x10330, 0x1034A)], None, True, "."),
}
EMOJI_RANGES = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6C5), (0x1F910, 0x1F93A), (0x2600, 0x26FF),
                (0x2700, 0x27BF)]
EMOJI_SEQUENCES = ["👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "👩🏽\u200d💻", "❤️", "1️⃣", "#️⃣", "👍🏻", "👍🏿",
                   "🧑\u200d🤝\u200d🧑", "🇺🇸", "🇯🇵", "🇩🇪", "🇧🇷", "☺️", "✌🏾", "🙋\u200d♀️"]
SPACES = [" ", "  ", "   ", "    ", " " * 8, " " * 17, "\t", "\t\t", "\n", "\n\n", "\n\n\n\n", "\r\n", "\r\n\r\n", "\r",
          " \n", "\n ", " \n \n", "\t\n", "\u00a0", "\u00a0\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u000b",
          "\u000c", "\u2003", "\u2009", "\u1680", "\u200b", "\u202f", "\u205f", " \u00a0 "]
BAD_UTF8 = [b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf",
            b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\x80", b"\xf4\x90\x80\x80", b"\xf5\x80\x80", b"\xf8\x88\x80\x80",
            b"\xfe", b"\xff\xfe", b"\x80\x80\x80", b"\xc3\xc3\xa9"]
WORDS = ("the of and to in is that for it as with was on be by this are at from or an have not which but all "
         "tokenizer model token text byte merge vocabulary encode decode layer weight attention").split()


def letters_of(ranges):
    """Code points of `ranges` that are letters / marks, and were already in Unicode 3.2 (so any Unicode
    version HF or utf8proc may use puts them in the same class: Georgian went from Lo to Ll, still L)."""
    chars = []
    for low, high in ranges:
        for code in range(low, high + 1):
            char = chr(code)
            category = unicodedata.category(char)
            if category[0] in "LM" and unicodedata.ucd_3_2_0.category(char)[0] == category[0]:
                chars.append(char)
    return chars


def digits_of(span):
    return [chr(code) for code in range(span[0], span[1] + 1) if unicodedata.category(chr(code)) == "Nd"] if span else []


class TextMaker:
    """Generators of the document kinds, deterministic from one random.Random."""

    def __init__(self, rng):
        self.rng = rng
        self.scripts = {name: (letters_of(ranges), digits_of(digits), spaced, end)
                        for name, (ranges, digits, spaced, end) in SCRIPTS.items()}
        self.emoji = [chr(c) for low, high in EMOJI_RANGES for c in range(low, high + 1)
                      if unicodedata.category(chr(c)) == "So"]

    def script_text(self, size):
        rng = self.rng
        name = rng.choice(list(self.scripts))
        letters, digits, spaced, end = self.scripts[name]
        parts = []
        length = 0
        while length < size:
            if rng.random() < 0.08 and digits:
                word = "".join(rng.choice(digits) for _ in range(rng.randint(1, 6)))
            elif rng.random() < 0.05:
                word = rng.choice(WORDS)
            else:
                word = "".join(rng.choice(letters) for _ in range(rng.randint(1, 9)))
            parts.append(word)
            if rng.random() < 0.12:
                parts.append(end + ("\n" if rng.random() < 0.3 else " "))
            elif spaced or rng.random() < 0.1:
                parts.append(" ")
            elif rng.random() < 0.1:
                parts.append(rng.choice(["、", ",", "，"]))
            length += len(word) * 3
        return "".join(parts)

    def emoji_text(self, size):
        rng = self.rng
        parts = []
        length = 0
        while length < size:
            kind = rng.random()
            if kind < 0.4:
                piece = rng.choice(WORDS) + " "
            elif kind < 0.75:
                piece = "".join(rng.choice(self.emoji) for _ in range(rng.randint(1, 4)))
                if rng.random() < 0.3:
                    piece += chr(rng.randint(0x1F3FB, 0x1F3FF))  # skin tone
                if rng.random() < 0.2:
                    piece += "\ufe0f"
            else:
                piece = rng.choice(EMOJI_SEQUENCES)
            parts.append(piece + (" " if rng.random() < 0.5 else ""))
            length += len(piece.encode())
        return "".join(parts)

    def whitespace_text(self, size):
        rng = self.rng
        parts = [rng.choice(SPACES)] if rng.random() < 0.5 else []
        length = 0
        while length < size:
            word = rng.choice(WORDS + ["x", "{", "}", "if (a) {", "return;", "#", "//", "-", "1", "42", "ü", "中"])
            parts.append(word + rng.choice(SPACES) * rng.randint(1, 3))
            length += len(word) + 4
        return "".join(parts)

    def with_bad_bytes(self, data):
        rng = self.rng
        data = bytearray(data)
        for _ in range(max(1, len(data) // 200)):
            position = rng.randrange(len(data) + 1)
            bad = rng.choice(BAD_UTF8) if rng.random() < 0.8 else bytes([rng.randint(0x80, 0xFF)])
            data[position:position] = bad
        return bytes(data)

    def chunk(self, data, size):
        start = self.rng.randrange(max(1, len(data) - size))
        return data[start:start + size]


def stdlib_sources():
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    return sorted(path for path in stdlib.rglob("*.py") if "site-packages" not in path.parts)


def prose_sources():
    paths = [path for path in pathlib.Path("/usr/share/common-licenses").glob("*")]
    doc = pathlib.Path("/usr/share/doc")
    for pattern in ("*/copyright", "*/README*", "*/changelog*", "*/NEWS*", "*/*.txt"):
        paths.extend(doc.glob(pattern))
    seen = set()
    texts = []
    for path in sorted(set(paths)):
        try:
            data = path.read_bytes()
            if path.suffix == ".gz":
                data = gzip.decompress(data)
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
        digest = hashlib.sha1(data).digest()
        if data and digest not in seen:
            seen.add(digest)
            texts.append(data)
    return texts


def assemble(seed, megabytes):
    """[(kind, raw bytes)] totalling at least `megabytes` MB."""
    rng = random.Random(seed)
    maker = TextMaker(rng)
    code = stdlib_sources()
    prose = prose_sources()
    if not code or not prose:
        sys.exit("check_tokenizers: no Python sources or /usr/share/doc texts found")
    # kind: share of the bytes
    shares = {"code": 0.30, "prose": 0.22, "scripts": 0.20, "emoji": 0.07, "whitespace": 0.07, "invalid": 0.07,
              "mixed": 0.07}
    target = int(megabytes * MB)
    documents = []
    for kind, share in shares.items():
        budget = int(target * share) + 1
        while budget > 0:
            size = rng.randint(200, 24_000)
            if kind == "code":
                data = maker.chunk(rng.choice(code).read_bytes(), size)
            elif kind == "prose":
                data = maker.chunk(rng.choice(prose), size)
            elif kind == "scripts":
                data = maker.script_text(size).encode()
            elif kind == "emoji":
                data = maker.emoji_text(size).encode()
            elif kind == "whitespace":
                data = maker.whitespace_text(size).encode()
            elif kind == "invalid":
                source = rng.choice([maker.script_text(size).encode(), maker.chunk(rng.choice(prose), size),
                                     maker.emoji_text(size).encode()])
                data = maker.with_bad_bytes(source)
            else:
                data = mixed_document(maker, code, prose, size)
            documents.append((kind, data))
            budget -= len(data)
    # One long document: long inputs (SentencePiece merges whole stretches between special tokens).
    documents.append(("long", b"".join(mixed_document(maker, code, prose, 20_000) for _ in range(15))))
    rng.shuffle(documents)
    return documents


def mixed_document(maker, code, prose, size):
    rng = maker.rng
    parts = []
    while sum(len(p) for p in parts) < size:
        kind = rng.randrange(5)
        piece_size = rng.randint(20, 2000)
        if kind == 0:
            parts.append(maker.chunk(rng.choice(code).read_bytes(), piece_size))
        elif kind == 1:
            parts.append(maker.chunk(rng.choice(prose), piece_size))
        elif kind == 2:
            parts.append(maker.script_text(piece_size).encode())
        elif kind == 3:
            parts.append(maker.emoji_text(piece_size).encode())
        else:
            parts.append(maker.whitespace_text(piece_size).encode())
        parts.append(rng.choice(SPECIAL_TOKENS + ["", " ", "\n"]).encode())
    return b"".join(parts)


def write_documents(path, documents):
    with open(path, "wb") as stream:
        for _, data in documents:
            stream.write(len(data).to_bytes(4, "little"))
            stream.write(data)


def read_ids(path, count):
    data = pathlib.Path(path).read_bytes()
    result = []
    offset = 0
    for _ in range(count):
        length = int.from_bytes(data[offset:offset + 4], "little")
        offset += 4
        ids = array.array("i")
        ids.frombytes(data[offset:offset + 4 * length])
        if sys.byteorder != "little":
            ids.byteswap()
        result.append(ids.tolist())
        offset += 4 * length
    if offset != len(data):
        sys.exit(f"check_tokenizers: {path}: {len(data) - offset} unexpected trailing bytes")
    return result


def run_tool(tool, tokenizer_path, documents_path, ids_path, repeat):
    completed = subprocess.run([tool, str(tokenizer_path), str(documents_path), str(ids_path), str(repeat)],
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        sys.exit(f"check_tokenizers: {tool} failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
    result = completed.stdout.strip().splitlines()[-1]
    fields = dict(item.split("=") for item in result.split()[1:])
    return float(fields["best_seconds"])


def report_mismatch(index, kind, raw, text, encoding, ours, tokenizer):
    expected = encoding.ids
    first = next((i for i, (a, b) in enumerate(zip(expected, ours)) if a != b), min(len(expected), len(ours)))
    print(f"  document {index} ({kind}, {len(raw)} bytes): first difference at token {first} "
          f"(HF {len(expected)} tokens, anvil {len(ours)})")
    if first < len(expected):
        start = encoding.offsets[first][0]
        print(f"    text there: {text[max(0, start - 40):start]!r} | {text[start:start + 60]!r}")
    low, high = max(0, first - 4), first + 6
    print(f"    HF:    {[(i, tokenizer.id_to_token(i)) for i in expected[low:high]]}")
    print(f"    anvil: {[(i, tokenizer.id_to_token(i)) for i in ours[low:high]]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tool", required=True, help="path of the anvil_tokenize_tool binary")
    parser.add_argument("--megabytes", type=float, default=5.5, help="text to assemble, in MB (10^6 bytes)")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--bench", action="store_true", help="also time single-threaded encoding, anvil vs HF")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tokenizer with --bench (best counts)")
    parser.add_argument("--only", help="run only the checks whose file name contains this")
    parser.add_argument("--max-reports", type=int, default=3, help="mismatching documents printed per tokenizer")
    args = parser.parse_args()
    if args.bench:  # before tokenizers starts its thread pool
        os.environ["RAYON_NUM_THREADS"] = "1"
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer  # noqa: PLC0415 (after the environment is set)

    started = time.perf_counter()
    documents = assemble(args.seed, args.megabytes)
    texts = [data.decode("utf-8", errors="replace") for _, data in documents]
    total = sum(len(data) for _, data in documents)
    kinds = {}
    for kind, data in documents:
        kinds[kind] = kinds.get(kind, 0) + len(data)
    replaced = sum("\ufffd" in text for text in texts)
    print(f"text: {len(documents)} documents, {total / MB:.2f} MB ("
          + ", ".join(f"{kind} {size / MB:.2f}" for kind, size in kinds.items())
          + f"), {replaced} with U+FFFD (ill-formed UTF-8); assembled in "
          f"{time.perf_counter() - started:.1f} s")
    failures = 0
    bench_rows = []
    with tempfile.TemporaryDirectory(prefix="anvil_tokenizers_") as directory:
        documents_path = pathlib.Path(directory, "documents.bin")
        write_documents(documents_path, documents)
        for ours_name, reference_name, description in CHECKS:
            if args.only and args.only not in ours_name:
                continue
            reference = Tokenizer.from_file(str(FIXTURES / reference_name))
            started = time.perf_counter()
            encodings = reference.encode_batch(texts, add_special_tokens=False)
            hf_seconds = time.perf_counter() - started
            for _ in range(args.repeat - 1 if args.bench else 0):
                started = time.perf_counter()
                reference.encode_batch(texts, add_special_tokens=False)
                hf_seconds = min(hf_seconds, time.perf_counter() - started)
            ids_path = pathlib.Path(directory, "ids.bin")
            anvil_seconds = run_tool(args.tool, FIXTURES / ours_name, documents_path, ids_path,
                                     args.repeat if args.bench else 1)
            ours = read_ids(ids_path, len(documents))
            bad = [i for i, (encoding, ids) in enumerate(zip(encodings, ours)) if encoding.ids != ids]
            tokens = sum(len(e.ids) for e in encodings)
            print(f"{ours_name:26} {description:45} {tokens:9d} tokens  "
                  + (f"MISMATCH in {len(bad)} of {len(documents)} documents" if bad else "identical"))
            for index in bad[:args.max_reports]:
                kind, raw = documents[index]
                report_mismatch(index, kind, raw, texts[index], encodings[index], ours[index], reference)
            failures += len(bad) > 0
            bench_rows.append((ours_name, total / MB / anvil_seconds, total / MB / hf_seconds))
    if args.bench:
        print("\nencode throughput, one thread, MB/s (best of %d runs over %.2f MB):" % (args.repeat, total / MB))
        print(f"  {'tokenizer':26} {'anvil':>8} {'HF':>8} {'anvil/HF':>9}")
        for name, anvil_rate, hf_rate in bench_rows:
            print(f"  {name:26} {anvil_rate:8.1f} {hf_rate:8.1f} {anvil_rate / hf_rate:8.2f}x")
    if total < args.megabytes * MB:
        print(f"check_tokenizers: only {total} bytes of text assembled")
        return 1
    print("check_tokenizers: " + (f"{failures} tokenizer(s) differ from HF" if failures else "all identical to HF"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
