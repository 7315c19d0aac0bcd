#!/usr/bin/env python3
"""SentencePiece tokenizer.model parity with the SentencePiece library itself (Debian python3-sentencepiece).

The library trains BPE models with LLaMA-2's settings (byte_fallback, identity normalizer, dummy prefix,
whitespace runs kept, digits split), on Austen and KJV text. Then
`bitnet tokenize -m tokenizer.model --jsonl --no-bos` and the library's encode() must give identical ids,
and bitnet's decoded text must equal the library's decode(), on the shared texts (40-line pieces of
WikiText-2 test and Persuasion: text the models were not trained on), the edge cases of hf_parity_test and
random strings (seed $BITNET_TOKENIZER_SEED). Special-token texts such as "<s>" are plain text, as in
SentencePiece.

Usage: spm_parity_test.py BITNET_BINARY
"""
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_parity_test  # noqa: E402
from hf_parity_test import EDGE_CASES, SEED, SHARED, bitnet_jsonl, compare, random_cases, write_cases  # noqa: E402


def text_pieces(rel, lines=40):
    with open(os.path.join(SHARED, "text", rel), encoding="utf-8") as f:
        ls = f.read().splitlines(keepends=True)
    return ["".join(ls[i:i + lines]) for i in range(0, len(ls), lines)]


class SpmParity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            import sentencepiece  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("python3-sentencepiece is not installed (scripts/install-deps.sh installs it)")
        if not os.path.isdir(os.path.join(SHARED, "text")):
            raise unittest.SkipTest(f"{SHARED}/text is absent (set BITNET_SHARED_DATA)")
        cls.tmp = tempfile.TemporaryDirectory()
        train = os.path.join(cls.tmp.name, "train.txt")
        with open(train, "w", encoding="utf-8") as f:
            for rel in ("austen/emma.txt", "austen/prideprejudice.txt", "kjv/kjv_plain.txt"):
                with open(os.path.join(SHARED, "text", rel), encoding="utf-8") as g:
                    f.write(g.read()[:400000])
        cls.cases = (EDGE_CASES + random_cases(SEED, 300) + text_pieces("wikitext-2/wiki.test.raw") +
                     text_pieces("austen/persuasion.txt"))
        cls.cases_path = os.path.join(cls.tmp.name, "cases.jsonl")
        write_cases(cls.cases_path, cls.cases)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def train(self, name, **extra):
        import sentencepiece as spm
        prefix = os.path.join(self.tmp.name, name)
        spm.SentencePieceTrainer.train(
            input=os.path.join(self.tmp.name, "train.txt"), model_prefix=prefix, vocab_size=extra.pop("vocab_size", 2000),
            model_type=extra.pop("model_type", "bpe"), byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
            add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True, character_coverage=0.9995,
            num_threads=2, minloglevel=2, **extra)
        return prefix + ".model"

    def check(self, model_path):
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=model_path)
        ours = bitnet_jsonl(model_path, self.cases_path, "--no-bos")
        theirs = []
        for c in self.cases:
            ids = sp.encode(c)
            theirs.append({"ids": ids, "text": sp.decode(ids)})
        compare(self, os.path.basename(model_path), "SentencePiece", self.cases, ours, theirs)

    def test_llama2_style_bpe(self):
        self.check(self.train("llama2_style"))

    def test_small_vocabulary(self):
        # Few merges: most words end in single characters and byte fallback.
        # (Not compared: user-defined pieces. SentencePiece matches them inside the text; bitnet, like llama.cpp
        # and HF tokenizers, splits them out first and adds the dummy-prefix '▁' to the text after them.)
        self.check(self.train("small", vocab_size=400))

    def test_refusals(self):
        unigram = self.train("unigram_refused", model_type="unigram", vocab_size=1000)
        p = subprocess.run([hf_parity_test.BITNET, "tokenize", "-m", unigram, "-p", "x"], capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Unigram", p.stderr)
        with open(unigram, "rb") as f:
            data = f.read()
        for cut in (1, 7, len(data) // 2):
            broken = os.path.join(self.tmp.name, f"cut{cut}.model")
            with open(broken, "wb") as f:
                f.write(data[:cut])
            p = subprocess.run([hf_parity_test.BITNET, "tokenize", "-m", broken, "-p", "x"], capture_output=True,
                               text=True)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(broken, p.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    hf_parity_test.BITNET = os.path.abspath(sys.argv[1])  # bitnet_jsonl reads it there
    unittest.main(argv=sys.argv[:1] + sys.argv[2:], verbosity=2)
