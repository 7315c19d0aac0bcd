#!/usr/bin/env python3
"""The trained default model (models/, docs/trained-model.md) against PyTorch's figures.

tests/trained/golden.json is written by tools/train/golden.py from the Hugging Face directory alone (its
own BPE, its own forward pass in PyTorch with the engine's int8 activation rounding); here `bitnet` reads
the committed GGUF (made by `bitnet convert` from that directory) and must reproduce it:
  - token ids of the held-out novel and WikiText-2 test, exactly;
  - perplexity on the same windows within 0.5 % (llama.cpp's method, -c 512);
  - greedy continuations of three prompts, token for token (where they part, PyTorch's top-2 margin
    there must be below what one int8 rounding step can move);
  - I2_S, TQ2_0 and TQ1_0 forms of the model give bit-identical logits; the committed GGUF is what
    `bitnet convert` writes from the committed directory; `bitnet validate` passes it;
  - commands without -m use it, from any working directory; BITNET_MODEL overrides.

Usage: trained_model_test.py BITNET_BINARY [ORACLE_DIR] [--quick]
  --quick: the first perplexity windows only, for sanitizer builds; ORACLE_DIR: where npm oracles go
Shared data from $BITNET_SHARED_DATA (default ../shared/data); tests needing it skip where it is absent.
"""
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

BITNET = None
QUICK = False
ORACLES = None  # folder for npm oracles (tests/oracles/install.sh); None: the HF tokenizers check is skipped
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(ROOT, "models", "bitnet-austen-5m.gguf")
HF_DIR = os.path.join(ROOT, "models", "bitnet-austen-5m-hf")
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
SHARED = os.environ.get("BITNET_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
PPL_TOLERANCE = 0.005    # relative, the bound
MARGIN_BOUND = 0.05      # logits: far above float rounding, below what an int8 flip in one activation moves
QUICK_CHUNKS = 6


def run(*args, check=0, cwd=None, env=None, stdin=None):
    p = subprocess.run([BITNET, *args], capture_output=True, cwd=cwd, env=env, stdin=stdin, timeout=1200)
    if check is not None and p.returncode != check:
        raise AssertionError(f"bitnet {' '.join(args)} exited {p.returncode}, expected {check}\n"
                             f"{p.stdout.decode(errors='replace')}\n{p.stderr.decode(errors='replace')}")
    return p


def ids_sha256(ids):
    return hashlib.sha256(json.dumps(ids, separators=(",", ":")).encode()).hexdigest()


class Trained(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(GOLDEN, encoding="utf-8") as f:
            cls.golden = json.load(f)

    def text_path(self, rel):
        path = os.path.join(SHARED, "text", rel)
        if not os.path.exists(path):
            self.skipTest(f"{path} is absent (set BITNET_SHARED_DATA)")
        return path

    def test_golden_is_for_the_committed_directory(self):
        h = hashlib.sha256()
        with open(os.path.join(HF_DIR, "model.safetensors"), "rb") as f:
            h.update(f.read())
        self.assertEqual(h.hexdigest(), self.golden["safetensors_sha256"],
                         "models/…-hf changed: regenerate tests/trained/golden.json with tools/train/golden.py")

    def test_tokenization_matches_pytorch(self):
        for t in self.golden["texts"]:
            with open(self.text_path(t["file"]), "rb") as f:
                ids = json.loads(run("tokenize", "-m", MODEL, "--json", stdin=f).stdout)
            self.assertEqual(len(ids), t["tokens"], t["file"])
            self.assertEqual(ids_sha256(ids), t["ids_sha256"], t["file"])

    def test_hf_tokenizers_reads_the_tokenizer_json_alike(self):
        # A third implementation: Hugging Face `tokenizers` (Rust, through npm) on the exported tokenizer.json.
        if not ORACLES:
            self.skipTest("no oracle folder given")
        here = os.path.dirname(os.path.abspath(__file__))
        p = subprocess.run([os.path.join(here, "..", "oracles", "install.sh"), ORACLES, "@anush008/tokenizers@0.6.0",
                            "@anush008/tokenizers-linux-x64-gnu@0.6.0"],
                           capture_output=True, text=True)
        if p.returncode == 77:
            self.skipTest(p.stdout.strip())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        env = {**os.environ, "NODE_PATH": os.path.join(ORACLES, "node_modules")}
        for t in self.golden["texts"]:
            with tempfile.TemporaryDirectory() as tmp:  # the whole text as one case of hf_tokenize_cases.mjs
                cases, out = os.path.join(tmp, "cases.jsonl"), os.path.join(tmp, "out.jsonl")
                with open(self.text_path(t["file"]), encoding="utf-8", newline="") as f, \
                        open(cases, "w", encoding="utf-8") as g:
                    g.write(json.dumps(f.read()) + "\n")
                q = subprocess.run(["node", os.path.join(here, "..", "oracles", "hf_tokenize_cases.mjs"),
                                    os.path.join(HF_DIR, "tokenizer.json"), cases, out],
                                   capture_output=True, text=True, env=env, timeout=600)
                self.assertEqual(q.returncode, 0, q.stderr)
                with open(out, encoding="utf-8", newline="") as f:
                    ids = json.loads(f.read().split("\n")[0])["ids"]
            bos = self.golden["greedy"][0]["prompt_ids"][0]
            self.assertEqual(ids_sha256([bos] + ids), t["ids_sha256"], t["file"])

    def test_perplexity_matches_pytorch(self):
        for t in self.golden["texts"]:
            chunks = min(QUICK_CHUNKS, t["chunks"]) if QUICK else t["chunks"]
            p = run("perplexity", "-m", MODEL, "-f", self.text_path(t["file"]), "-c", str(t["n_ctx"]), "--json",
                    "--chunks", str(chunks))
            got = json.loads(p.stdout)
            per_chunk = t["tokens_scored"] // t["chunks"]
            want = math.exp(sum(t["chunk_nll"][:chunks]) / (chunks * per_chunk))
            self.assertEqual(got["chunks"], chunks)
            self.assertEqual(got["tokens_scored"], chunks * per_chunk)
            rel = abs(got["ppl"] - want) / want
            print(f"{t['file']}: {chunks} windows, bitnet PPL {got['ppl']:.5f}, PyTorch {want:.5f}, "
                  f"relative difference {rel:.2e}", file=sys.stderr)
            self.assertLess(rel, PPL_TOLERANCE, t["file"])
            if not QUICK:
                self.assertAlmostEqual(got["bits_per_byte"], t["bits_per_byte"], delta=0.005 * t["bits_per_byte"])

    def test_quality(self):
        # The bar: better than xz -9e on the held-out novel (2.47 bits per byte), at most 2.4.
        novel = next(t for t in self.golden["texts"] if "persuasion" in t["file"])
        self.assertLessEqual(novel["bits_per_byte"], 2.4)

    def greedy_check(self, g, got_ids):
        want = g["ids"]
        for i, (a, b) in enumerate(zip(got_ids, want)):
            if a != b:
                # Parting is allowed only where PyTorch's top two were within rounding of each other.
                self.assertLess(g["margins"][i], MARGIN_BOUND,
                                f"{g['prompt']!r}: token {i} is {a}, PyTorch {b} (margin {g['margins'][i]:.4f})")
                print(f"{g['prompt']!r}: parts at token {i} where PyTorch's top-2 margin is {g['margins'][i]:.4f}",
                      file=sys.stderr)
                return
        self.assertEqual(len(got_ids), len(want), g["prompt"])

    def test_greedy_matches_pytorch(self):
        for g in self.golden["greedy"]:
            # The file's F16 head, as PyTorch's (run's default quantizes it: README "LM head formats").
            out = json.loads(run("run", "-m", MODEL, "-p", g["prompt"], "-n", str(len(g["ids"])), "--temp", "0",
                                 "--json", "--lm-head", "f16").stdout)
            self.assertEqual(out["prompt_ids"], g["prompt_ids"], g["prompt"])
            self.greedy_check(g, out["ids"])
            self.assertGreaterEqual(len(out["ids"]), 48)

    def test_default_model_from_any_directory(self):
        env = {k: v for k, v in os.environ.items() if k != "BITNET_MODEL"}
        g = self.golden["greedy"][0]
        out = json.loads(run("run", "-p", g["prompt"], "-n", "16", "--temp", "0", "--json", "--lm-head", "f16", cwd="/",
                             env=env).stdout)
        self.greedy_check({**g, "ids": g["ids"][:16]}, out["ids"])
        info = json.loads(run("inspect", "--json", cwd="/", env=env).stdout)
        self.assertEqual(info["summary"]["architecture"], "bitnet-b1.58")
        self.assertEqual(os.path.realpath(info["file"]), os.path.realpath(MODEL))
        run("validate", cwd="/", env=env)
        ids = json.loads(run("tokenize", "-p", "Anne", "--json", cwd="/", env=env).stdout)
        self.assertEqual(ids[0], g["prompt_ids"][0])

    def test_bitnet_model_overrides(self):
        env = {**os.environ, "BITNET_MODEL": "/nonexistent/model.gguf"}
        p = run("run", "-p", "x", "-n", "1", env=env, check=1)
        self.assertIn("/nonexistent/model.gguf", p.stderr.decode())

    def test_validate_is_clean(self):
        report = json.loads(run("validate", "--json", MODEL).stdout)[0]
        bad = [f for f in report["findings"] if f["severity"] in ("error", "warning")]
        self.assertEqual(bad, [])

    def test_converter_reproduces_the_committed_gguf(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "m.gguf")
            run("convert", HF_DIR, "-o", out, "--type", "i2_s")
            with open(out, "rb") as a, open(MODEL, "rb") as b:
                self.assertTrue(a.read() == b.read(), "bitnet convert of models/…-hf differs from the committed GGUF")

    def test_ternary_forms_give_identical_logits(self):
        tokens = ",".join(str(i) for i in self.golden["greedy"][2]["prompt_ids"] + self.golden["greedy"][2]["ids"][:20])
        with tempfile.TemporaryDirectory() as d:
            logits = {}
            for typ in ("i2_s", "tq2_0", "tq1_0"):
                gguf = os.path.join(d, typ + ".gguf")
                run("convert", HF_DIR, "-o", gguf, "--type", typ)
                out = os.path.join(d, typ + ".f32")
                run("eval", "-m", gguf, "--tokens", tokens, "--logits-out", out)
                with open(out, "rb") as f:
                    logits[typ] = f.read()
            # The same moves with `bitnet quantize` from the committed I2_S file (no --round-scales needed: the
            # export made every scale fp16-exact).
            for typ in ("tq2_0", "tq1_0"):
                gguf = os.path.join(d, "q-" + typ + ".gguf")
                run("quantize", MODEL, gguf, "--type", typ)
                out = os.path.join(d, "q-" + typ + ".f32")
                run("eval", "-m", gguf, "--tokens", tokens, "--logits-out", out)
                with open(out, "rb") as f:
                    logits["q-" + typ] = f.read()
            self.assertGreater(len(logits["i2_s"]), 0)
            for typ in ("tq2_0", "tq1_0", "q-tq2_0", "q-tq1_0"):
                self.assertEqual(logits[typ], logits["i2_s"], typ)

    def test_installed_binary_finds_the_model(self):
        # cmake --install into a fresh prefix, then run from / with no -m and no BITNET_MODEL.
        build = os.path.dirname(os.path.dirname(BITNET))  # <build>/apps/bitnet
        if not os.path.exists(os.path.join(build, "cmake_install.cmake")):
            self.skipTest(f"{build} is not a CMake build folder")
        with tempfile.TemporaryDirectory() as prefix:
            p = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            exe = os.path.join(prefix, "bin", "bitnet")
            env = {k: v for k, v in os.environ.items() if k != "BITNET_MODEL"}
            g = self.golden["greedy"][1]
            q = subprocess.run([exe, "run", "-p", g["prompt"], "-n", "8", "--temp", "0", "--json", "--lm-head", "f16"],
                               cwd="/", env=env,
                               capture_output=True, text=True)
            self.assertEqual(q.returncode, 0, q.stderr)
            self.greedy_check({**g, "ids": g["ids"][:8]}, json.loads(q.stdout)["ids"])
            info = json.loads(subprocess.run([exe, "inspect", "--json"], cwd="/", env=env, capture_output=True,
                                             text=True).stdout)
            self.assertEqual(os.path.realpath(info["file"]),
                             os.path.realpath(os.path.join(prefix, "share", "bitnet", "models", "bitnet-austen-5m.gguf")))


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--quick"]
    QUICK = "--quick" in sys.argv[1:]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    BITNET = os.path.abspath(args[0])
    ORACLES = os.path.abspath(args[1]) if len(args) == 2 else None
    unittest.main(argv=[sys.argv[0], "-v"])
