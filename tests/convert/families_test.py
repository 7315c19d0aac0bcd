#!/usr/bin/python3
"""`bitnet convert` on folders laid out like Falcon3-*-1.58bit, Llama3-8B-1.58-100B-tokens and 1bitLLM
bitnet_b1_58 (tests/convert/families.py), checked against what is computed independently from the
safetensors:

- every tensor of the GGUF, dequantized, equals the checkpoint's values: packed codes unpacked by NumPy, the
  scale 1 / weight_scale (BitLinear divides; the last of two "quantization_config" keys counts), latent
  weights ternarised with absmean, and for arch llama the q/k rows permuted as llama.cpp's converter does
  (new row 2i + t of a head = old row t * d/2 + i);
- `bitnet eval` logits equal the NumPy forward pass run on the checkpoint as Hugging Face runs it (rotating
  (i, i + d/2) on unpermuted rows: no permutation code shared with the converter);
- every linear type (i2_s, tq2_0, tq1_0) gives the same logits; `--output-type` q8_0 / q6_k stays close;
- vocabularies: Falcon3's byte-level BPE gets llama.cpp's LLaMA-3 pre-tokenizer name; 1bitLLM's
  tokenizer.model becomes GGUF model "llama" with <pad> and </line> appended, and the converted file
  tokenizes like the SentencePiece library on the folder's tokenizer.model (when python3-sentencepiece is
  installed); `bitnet validate` is clean on every file.

Usage: families_test.py BITNET
"""
import json
import os
import sys
import unittest

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import bitnet_ref as ref  # noqa: E402
import convert_test as ct  # noqa: E402  (Base: temporary folder, convert / validate / eval; run; log_softmax)
import families  # noqa: E402
from gguf_min import GGUFFile  # noqa: E402
from hf_reference import HFModel  # noqa: E402

SHARED, HAVE_LLAMA3 = ct.SHARED, ct.HAVE_LLAMA3
TEXTS = ["Emma Woodhouse, handsome, clever, and rich", "  the and of  to\n\nher she", "Mr. Knightley 1816 ünï",
         "<s> not </s> a <pad>b</line>"]


def permute_norm_rope(w, n_head):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, for rows of w [out, in]."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class Families(ct.Base):
    def convert(self, src, out, *args):
        """convert_test's conversion, then `bitnet validate` must be clean."""
        path, err = super().convert(src, out, *args)
        self.validate(path)
        return path, err

    def logits(self, model, tokens):
        return np.frombuffer(self.eval(model, tokens), np.float32).reshape(len(tokens), -1)

    def check_tensors(self, model, hf_dir, arch, cfg, scale="f32"):
        g, h = GGUFFile(model), HFModel(hf_dir, arch, scale=scale)
        self.assertEqual(set(g.tensors), set(h.tensors))
        for name in g.tensors:
            a, b = g.dequant(name), h.dequant(name)
            if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
                b = permute_norm_rope(b, cfg["num_attention_heads"] if ".attn_q." in name else cfg["num_key_value_heads"])
            self.assertTrue(np.array_equal(a, b), f"{name}: max diff {np.abs(a - b).max()}")

    def check_logits(self, model, hf_dir, arch, tokens, scale="f32"):
        eng = self.logits(model, tokens)
        want = ref.forward(HFModel(hf_dir, arch, scale=scale), tokens)
        d = np.abs(ct.log_softmax(eng) - ct.log_softmax(want)).max(1)
        msg = f"{os.path.basename(model)}: per-position max |dlogprob| {np.array2string(d, precision=2)}"
        print(msg, file=sys.stderr)
        # Scales are exact (families.py), so the int8 activations of both sides are the same: float rounding only.
        self.assertLess(d.max(), 1e-4, msg)
        self.assertTrue((eng.argmax(1) == want.argmax(1)).all(), msg)
        return eng

    def llama_form(self, d, cfg, tokens, pre):
        path, err = self.convert(d, "m.gguf")
        self.assertIn("divides", err)  # BitLinear: stored scale = 1 / weight_scale
        g = GGUFFile(path)
        self.assertEqual(g.arch, "llama")
        self.assertEqual(g.info("blk.0.attn_q.weight").type_name, "TQ2_0")
        self.assertEqual(g.info("output.weight").type_name, "F16")
        self.assertEqual(g.metadata["llama.rope.freq_base"], np.float32(cfg["rope_theta"]))
        self.assertEqual(g.metadata["tokenizer.ggml.model"], "gpt2")
        self.assertEqual(g.metadata["tokenizer.ggml.pre"], pre)
        self.check_tensors(path, d, "llama", cfg, scale="f16")
        base = self.check_logits(path, d, "llama", tokens, scale="f16")
        # I2_S keeps the float32 scale; TQ1_0 the same fp16 one as TQ2_0.
        i2s, note = self.convert(d, "i2s.gguf", "--type", "i2_s")
        self.assertIn("llama.cpp does not know", note)
        self.check_tensors(i2s, d, "llama", cfg, scale="f32")
        self.check_logits(i2s, d, "llama", tokens, scale="f32")
        tq1, _ = self.convert(d, "tq1.gguf", "--type", "tq1_0")
        self.assertTrue(np.array_equal(self.logits(tq1, tokens), base))
        p = np.exp(ct.log_softmax(base))
        for t, kl_bound in (("q8_0", 2e-3), ("q6_k", 2e-2)):  # measured max 8e-4, 7e-3
            q, _ = self.convert(d, f"{t}.gguf", "--output-type", t)
            self.assertEqual(GGUFFile(q).info("output.weight").type_name, t.upper())
            self.assertEqual(GGUFFile(q).info("token_embd.weight").type_name, "F16")
            lq = self.logits(q, tokens)
            kl = (p * (ct.log_softmax(base) - ct.log_softmax(lq))).sum(1)
            print(f"--output-type {t}: KL(f16 || {t}) mean {kl.mean():.2e} max {kl.max():.2e}", file=sys.stderr)
            self.assertLess(kl.max(), kl_bound, t)
            self.assertGreaterEqual((lq.argmax(1) == base.argmax(1)).mean(), 0.9, t)

    def test_falcon3(self):
        d = self.p("falcon3")
        cfg = families.make_falcon3(d)
        tokens = [11, 250, 17, 279, 44, 91, 270, 12, 5, 260, 33, 271, 80, 101, 9, 200]
        # llama.cpp's name for Falcon3's tokenizer; it applies ignore_merges there, this tokenizer.json does not,
        # so the file also stores the pipeline for bitnet.
        self.llama_form(d, cfg, tokens, "falcon3")
        g = GGUFFile(self.p("m.gguf"))
        self.assertIn("tokenizer.bitnet.hf_pipeline", g.metadata)
        self.assertEqual(g.metadata["tokenizer.ggml.eos_token_id"], 11)
        self.assertEqual(g.metadata["tokenizer.ggml.tokens"][0], ">>TITLE<<")
        self.assertEqual(g.metadata["tokenizer.ggml.token_type"][11], 3)
        self.assertEqual(len(g.metadata["tokenizer.ggml.tokens"]), cfg["vocab_size"])
        # The same ids from the GGUF as from the folder's tokenizer.json.
        for text in TEXTS:
            a = json.loads(ct.run("tokenize", "-m", self.p("m.gguf"), "-p", text, "--json", "--no-bos").stdout)
            b = json.loads(ct.run("tokenize", "-m", os.path.join(d, "tokenizer.json"), "-p", text, "--json",
                               "--no-bos").stdout)
            self.assertEqual(a, b, text)

    def test_llama3_8b(self):
        if not HAVE_LLAMA3:
            self.skipTest(f"shared data missing: {SHARED}/tokenizer/llama3 (set BITNET_SHARED_DATA)")
        d = self.p("llama3_8b")
        cfg = families.make_llama3_8b(d, shared=SHARED)
        with open(os.path.join(d, "config.json")) as f:
            self.assertEqual(f.read().count('"quantization_config"'), 2)
        self.llama_form(d, cfg, [128000, 791, 6864, 315, 9822, 374, 12366, 13, 578, 1176, 3446, 4536, 5655, 1749],
                        "llama-bpe")
        g = GGUFFile(self.p("m.gguf"))
        self.assertNotIn("tokenizer.bitnet.hf_pipeline", g.metadata)  # llama-bpe says it all
        self.assertEqual(g.metadata["llama.attention.head_count_kv"], 1)
        self.assertEqual(g.metadata["tokenizer.ggml.bos_token_id"], 128000)

    def test_bitnet1(self):
        d = self.p("bitnet1")
        cfg = families.make_bitnet1(d)
        path, err = self.convert(d, "m.gguf")
        self.assertIn("tokenizer.model", err)
        g = GGUFFile(path)
        self.assertEqual(g.arch, "bitnet")
        self.assertEqual(g.metadata["bitnet.hidden_activation"], "silu")
        self.assertNotIn("output.weight", g.tensors)
        md = g.metadata
        self.assertEqual(md["tokenizer.ggml.model"], "llama")
        toks = md["tokenizer.ggml.tokens"]
        self.assertEqual(len(toks), cfg["vocab_size"])
        self.assertEqual(toks[-2:], ["<pad>", "</line>"])
        self.assertEqual(list(md["tokenizer.ggml.token_type"][-2:]), [3, 4])  # special <pad>, user-defined </line>
        self.assertEqual((md["tokenizer.ggml.bos_token_id"], md["tokenizer.ggml.eos_token_id"]), (1, 2))
        self.assertEqual(md["tokenizer.ggml.padding_token_id"], cfg["vocab_size"] - 2)  # <pad>, from tokenizer_config
        self.assertEqual(list(md["tokenizer.ggml.token_type"][3:5]), [6, 6])  # byte pieces
        self.check_tensors(path, d, "bitnet", cfg, scale="f16")
        tokens = [1, 300, 17, 280, 44, 91, 270, 12, 5, 260, 33, 271, 80, 101, 9, 200]
        self.check_logits(path, d, "bitnet", tokens, scale="f16")
        # The converted vocabulary against SentencePiece itself, on the folder's tokenizer.model. (Texts without
        # added tokens: SentencePiece does not know <pad> and </line>, which live in added_tokens.json.)
        try:
            import sentencepiece as spm
        except ImportError:
            print("sentencepiece parity skipped: python3-sentencepiece is not installed", file=sys.stderr)
            return
        sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
        for text in TEXTS[:3] + ["Emma \u00e9t\u00e9 \U0001F600  x"]:
            ours = json.loads(ct.run("tokenize", "-m", path, "-p", text, "--json").stdout)
            self.assertEqual(ours, [1] + sp.encode(text), text)
        r = ct.run("tokenize", "-m", path, "-p", "a</line>b <pad>", "--json", "--no-bos", "--parse-special")
        ids = json.loads(r.stdout)
        self.assertIn(cfg["vocab_size"] - 1, ids)  # </line>
        self.assertIn(cfg["vocab_size"] - 2, ids)  # <pad>


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    ct.BITNET = os.path.abspath(sys.argv[1])  # ct.run reads it there
    unittest.main(argv=sys.argv[:1] + sys.argv[2:], verbosity=2)
