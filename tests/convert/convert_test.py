#!/usr/bin/python3
"""`bitnet convert` and `bitnet quantize` through the CLI, on Hugging Face folders generated here
(hf_fixture.py: config.json, tokenizer files, safetensors in the master / packed / int8 forms, one file or
two shards).

- Logits: `bitnet eval` on the converted file against the independent NumPy forward pass
  (tests/reference/bitnet_ref.py) fed directly from the safetensors (hf_reference.py). With fixture
  scales whose float32 products are exact (hf_fixture.nice_master) the two agree to ~1e-6; with arbitrary
  float32 scales both are right but round a few int8 activations on opposite sides of .5, so there every
  converted tensor is compared bit-exactly instead and the logits within quantization noise.
- Forms: a master checkpoint and its own packing (weight_scale = absmean, AutoBitLinear) give identical
  GGUF tensors; BitLinear's inverse weight_scale gives the same codes and the same scale to 1 ulp.
- `bitnet validate` is clean on every converted file; quantize round trips I2_S -> TQ1_0 -> TQ2_0 -> I2_S
  byte-identically, with bit-identical logits at every step; bad input fails with the tensor's name and
  leaves no file behind; Ctrl-C removes the partial output; the progress bar appears only on a terminal.

Usage: convert_test.py BITNET
"""
import glob
import json
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import bitnet_ref as ref  # noqa: E402
import hf_fixture as hf  # noqa: E402
from gguf_min import GGUFFile  # noqa: E402
from hf_reference import HFModel  # noqa: E402

SHARED = os.environ.get("BITNET_SHARED_DATA") or os.path.join(HERE, "..", "..", "..", "shared", "data")
HAVE_LLAMA3 = os.path.exists(os.path.join(SHARED, "tokenizer", "llama3", "tokenizer.json"))
BITNET = None
TOKENS_TINY = [264, 5, 9, 100, 7, 3, 250, 17, 42, 8, 270, 11, 64, 200, 1, 33]
TOKENS_L3 = [128000, 791, 6864, 315, 9822, 374, 12366, 13, 578, 1176, 3446, 4536, 5655, 1749, 11, 323]


def run(*args, check=0):
    p = subprocess.run([BITNET, *map(str, args)], capture_output=True, timeout=900)
    if check is not None and p.returncode != check:
        raise AssertionError(f"bitnet {' '.join(map(str, args))} exited {p.returncode}\n"
                             f"{p.stderr.decode(errors='replace')}")
    return p


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def ternary_bytes(path):
    """{name: bytes of the codes and scale(s)} of every ternary tensor (I2_S: without the 28 pad bytes)."""
    g = GGUFFile(path)
    out = {}
    for name, t in g.tensors.items():
        if t.type_name in ("I2_S", "TQ1_0", "TQ2_0"):
            raw = g.raw(name)
            out[name] = (t.type_name, bytes(raw[:t.n_elements // 4 + 4] if t.type_name == "I2_S" else raw))
    return out


def tensor_bytes(path):
    g = GGUFFile(path)
    return {n: (t.type_name, t.ne, bytes(g.raw(n))) for n, t in g.tensors.items()}


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def p(self, name):
        return os.path.join(self.tmp.name, name)

    def ckpt(self, name, form="master", **kw):
        d = self.p(name)
        hf.make_checkpoint(d, form, shared=SHARED, **kw)
        return d

    def convert(self, src, out, *args, check=0):
        path = self.p(out)
        r = run("convert", src, "-o", path, *args, check=check)
        return path, r.stderr.decode(errors="replace")

    def validate(self, path):
        r = run("validate", path, check=None)
        self.assertEqual(r.returncode, 0, f"validate {path}:\n{r.stdout.decode()}{r.stderr.decode()}")

    def eval(self, model, tokens, *args):
        out = self.p("logits.f32")
        run("eval", "-m", model, "--tokens", ",".join(map(str, tokens)), "--logits-out", out, "--kv-type", "f32", *args)
        with open(out, "rb") as f:
            raw = f.read()
        os.remove(out)
        return raw

    def against_reference(self, model, hf_dir, arch, tokens, scale="f32", embd="f16"):
        """Engine logits vs the NumPy forward pass from the safetensors. Both quantize activations to int8;
        the engine rounds values computed in float32, the reference values computed in float64, so now and
        then one activation lands on the other side of .5 and that position (and, in attention, later
        ones) moves by up to a few 1e-2. Most positions must agree to 1e-4, none by more than 0.15, and the
        argmax everywhere. (Every tensor is compared bit-exactly elsewhere.)"""
        eng = np.frombuffer(self.eval(model, tokens), np.float32).reshape(len(tokens), -1)
        want = ref.forward(HFModel(hf_dir, arch, scale=scale, embd=embd), tokens)
        d = np.abs(log_softmax(eng) - log_softmax(want)).max(1)
        msg = f"{os.path.basename(model)}: per-position max |dlogprob| {np.array2string(d, precision=2)}"
        self.assertGreaterEqual((d < 1e-4).mean(), 0.75, msg)
        self.assertLess(d.max(), 0.15, msg)
        self.assertTrue((eng.argmax(1) == want.argmax(1)).all(), msg)

    def assert_tensors_equal_checkpoint(self, model, hf_dir, arch, scale="f32"):
        """Every tensor of the converted file, dequantized, equals the checkpoint's values bit for bit."""
        g, h = GGUFFile(model), HFModel(hf_dir, arch, scale=scale)
        self.assertEqual(set(g.tensors), set(h.tensors))
        for name in g.tensors:
            a, b = g.dequant(name), h.dequant(name)
            self.assertTrue(np.array_equal(a, b), f"{name}: max diff {np.abs(a - b).max()}")


class Convert(Base):
    def test_master_and_packed_llama3_match_reference(self):
        if not HAVE_LLAMA3:
            self.skipTest(f"shared data missing: {SHARED}/tokenizer/llama3 (set BITNET_SHARED_DATA)")
        outs = {}
        for form in ("master", "packed"):
            d = self.ckpt(form, form, vocab="llama3", kv_heads=2)
            outs[form], _ = self.convert(d, f"{form}.gguf", "--name", "m")
            self.validate(outs[form])
            self.assert_tensors_equal_checkpoint(outs[form], d, "bitnet-b1.58")
            self.against_reference(outs[form], d, "bitnet-b1.58", TOKENS_L3)
        self.assertEqual(tensor_bytes(outs["master"]), tensor_bytes(outs["packed"]))
        g = GGUFFile(outs["packed"])
        md = g.metadata
        self.assertEqual(g.arch, "bitnet-b1.58")
        self.assertEqual(md["general.file_type"], 40)
        self.assertEqual(md["bitnet-b1.58.vocab_size"], 128256)
        self.assertEqual(md["bitnet-b1.58.attention.head_count_kv"], 2)
        self.assertEqual(md["tokenizer.ggml.pre"], "llama-bpe")
        self.assertEqual(md["tokenizer.ggml.bos_token_id"], 128000)
        self.assertEqual(len(md["tokenizer.ggml.tokens"]), 128256)
        self.assertEqual(md["tokenizer.chat_template"], hf.HF_CHAT_TEMPLATE)
        self.assertEqual(g.info("token_embd.weight").type_name, "F16")
        self.assertNotIn("output.weight", g.tensors)

    def test_weight_scale_direction(self):
        """weight_scale = absmean multiplies (AutoBitLinear); 1/absmean divides (BitLinear): same file as the master."""
        for nice in (True, False):
            base, _ = self.convert(self.ckpt(f"m{nice}", nice=nice), f"m{nice}.gguf", "--name", "m")
            want = ternary_bytes(base)
            auto, _ = self.convert(self.ckpt(f"a{nice}", "packed", nice=nice, scale_dtype="F32"), f"a{nice}.gguf",
                                   "--name", "m")
            self.assertEqual(ternary_bytes(auto), want, f"nice={nice}")
            int8, _ = self.convert(self.ckpt(f"i{nice}", "int8", nice=nice, scale_dtype="F32"), f"i{nice}.gguf",
                                   "--name", "m")
            self.assertEqual(ternary_bytes(int8), want, f"nice={nice}")
            inv, err = self.convert(self.ckpt(f"b{nice}", "bitlinear", nice=nice, scale_dtype="F32"), f"b{nice}.gguf")
            self.assertIn("divides", err)
            got = ternary_bytes(inv)
            for name, (_, w) in want.items():
                n = len(w) - 4
                self.assertEqual(got[name][1][:n], w[:n], name)  # codes
                s_want, s_got = np.frombuffer(w[n:], "<f4")[0], np.frombuffer(got[name][1][n:], "<f4")[0]
                self.assertLessEqual(abs(float(s_got) - float(s_want)), float(np.spacing(s_want)), name)
        # Forcing the other direction inverts the scales; without linear_class the user must choose.
        d = self.p("aTrue")
        wrong, _ = self.convert(d, "wrong.gguf", "--weight-scale", "divide")
        g, h = GGUFFile(wrong), GGUFFile(self.p("aTrue.gguf"))
        s1, s2 = g.ternary("blk.0.attn_q.weight").scale, h.ternary("blk.0.attn_q.weight").scale
        self.assertAlmostEqual(s1 * s2, 1.0, places=6)
        cfg = hf.load_json(os.path.join(d, "config.json"))
        del cfg["quantization_config"]
        hf.dump_json(cfg, os.path.join(d, "config.json"))
        _, err = self.convert(d, "none.gguf", check=1)
        self.assertIn("--weight-scale", err)

    def test_every_type_and_embedding(self):
        d = self.ckpt("m", kv_heads=2)
        base = self.eval(self.convert(d, "i2_s.gguf")[0], TOKENS_TINY)
        for t in ("tq2_0", "tq1_0", "f16", "f32"):
            for arch in ("bitnet-b1.58", "bitnet") if t.startswith("tq") else ("bitnet-b1.58",):
                path, _ = self.convert(d, f"{t}-{arch}.gguf", "--type", t, "--arch", arch)
                self.validate(path)
                if arch == "bitnet":
                    continue
                extra = ("--act-quant", "per-token") if t.startswith("f") else ()
                self.assertEqual(self.eval(path, TOKENS_TINY, *extra), base, t)  # fixture scales are fp16 values
        for e in ("f32", "q8_0"):
            path, _ = self.convert(d, f"e{e}.gguf", "--embedding-type", e)
            self.validate(path)
            self.assertEqual(GGUFFile(path).info("token_embd.weight").type_name, e.upper())
        self.against_reference(self.p("ef32.gguf"), d, "bitnet-b1.58", TOKENS_TINY, embd="f32")
        self.against_reference(self.p("tq2_0-bitnet.gguf"), d, "bitnet", TOKENS_TINY)

    def test_realistic_scales(self):
        """Arbitrary float32 absmean scales: tensors bit-exact, logits within int8 rounding noise."""
        d = self.ckpt("m", nice=False)
        path, _ = self.convert(d, "m.gguf")
        self.validate(path)
        self.assert_tensors_equal_checkpoint(path, d, "bitnet-b1.58")
        tq, _ = self.convert(d, "tq.gguf", "--type", "tq2_0")  # TQ stores fp16(absmean)
        self.assert_tensors_equal_checkpoint(tq, d, "bitnet-b1.58", scale="f16")
        eng = np.frombuffer(self.eval(path, TOKENS_TINY), np.float32).reshape(len(TOKENS_TINY), -1)
        want = ref.forward(HFModel(d, "bitnet-b1.58"), TOKENS_TINY)
        dd = np.abs(log_softmax(eng) - log_softmax(want))
        self.assertLess(dd.mean(), 0.03)
        self.assertGreaterEqual((eng.argmax(1) == want.argmax(1)).mean(), 0.9)

    def test_sharded_checkpoint_gives_the_same_file(self):
        a, _ = self.convert(self.ckpt("one", "packed", seed=5), "one.gguf", "--name", "x")
        b, _ = self.convert(self.ckpt("two", "packed", seed=5, shards=2), "two.gguf", "--name", "x")
        self.assertTrue(os.path.exists(os.path.join(self.p("two"), "model-00002-of-00002.safetensors")))
        self.assertEqual(read(a), read(b))

    def test_silu_bitnet_and_untied_head(self):
        d = self.ckpt("s", hidden_act="silu", arch="BitnetForCausalLM")
        path, _ = self.convert(d, "s.gguf")  # default: llama.cpp's bitnet, TQ2_0
        g = GGUFFile(path)
        self.assertEqual((g.arch, g.metadata["bitnet.hidden_activation"]), ("bitnet", "silu"))
        self.assertEqual(g.info("blk.0.attn_q.weight").type_name, "TQ2_0")
        self.validate(path)
        self.against_reference(path, d, "bitnet", TOKENS_TINY, scale="f16")
        _, err = self.convert(d, "x.gguf", "--arch", "bitnet-b1.58", check=1)
        self.assertIn("relu2", err)
        i2s, err = self.convert(d, "x.gguf", "--type", "i2_s")  # bitnet.cpp's type, with a note for llama.cpp users
        self.assertIn("llama.cpp does not know", err)
        self.validate(i2s)
        self.against_reference(i2s, d, "bitnet", TOKENS_TINY, scale="f32")
        _, err = self.convert(self.ckpt("r"), "r.gguf", "--arch", "bitnet")
        self.assertIn("SiLU", err)  # relu2 kept in bitnet.hidden_activation; llama.cpp would ignore it
        u = self.ckpt("u", tie=False, lm_head=True)
        path, _ = self.convert(u, "u.gguf")
        self.assertIn("output.weight", GGUFFile(path).tensors)
        self.validate(path)
        _, err = self.convert(u, "u2.gguf", "--arch", "bitnet", check=1)
        self.assertIn("lm_head", err)


class Quantize(Base):
    def test_round_trip_is_byte_identical(self):
        d = self.ckpt("m", "packed", kv_heads=2)
        src, _ = self.convert(d, "i2s.gguf")
        want_t, want_l = ternary_bytes(src), self.eval(src, TOKENS_TINY)
        want_md = GGUFFile(src).metadata
        prev = src
        for t in ("tq1_0", "tq2_0", "i2_s", "f16", "i2_s", "f32", "i2_s"):
            out = self.p(f"q-{t}-{os.path.basename(prev)}")
            run("quantize", prev, out, "--type", t)
            self.validate(out)
            extra = ("--act-quant", "per-token") if t.startswith("f") else ()
            self.assertEqual(self.eval(out, TOKENS_TINY, *extra), want_l, f"logits after {t}")
            md = GGUFFile(out).metadata
            for k, v in want_md.items():
                if k != "general.file_type":
                    self.assertTrue(np.array_equal(md[k], v) if isinstance(v, np.ndarray) else md[k] == v, k)
            prev = out
            if t == "i2_s":
                self.assertEqual(ternary_bytes(out), want_t)
                self.assertEqual(tensor_bytes(out), tensor_bytes(src))
        # To llama.cpp's bitnet and back, and the embedding.
        tq = self.p("bitnet.gguf")
        run("quantize", src, tq, "--arch", "bitnet", "--type", "tq2_0")
        g = GGUFFile(tq)
        self.assertEqual((g.arch, g.metadata["bitnet.hidden_activation"]), ("bitnet", "relu2"))
        self.assertNotIn("bitnet-b1.58.block_count", g.metadata)
        self.assertEqual(self.eval(tq, TOKENS_TINY), want_l)
        run("quantize", tq, self.p("back.gguf"), "--arch", "bitnet-b1.58", "--type", "i2_s")
        self.assertEqual(tensor_bytes(self.p("back.gguf")), tensor_bytes(src))
        self.assertNotIn("bitnet-b1.58.hidden_activation", GGUFFile(self.p("back.gguf")).metadata)
        run("quantize", src, self.p("q8.gguf"), "--embedding-type", "q8_0")
        self.validate(self.p("q8.gguf"))
        self.assertEqual(GGUFFile(self.p("q8.gguf")).info("token_embd.weight").type_name, "Q8_0")

    def test_refusals(self):
        d = self.ckpt("m", nice=False)
        src, _ = self.convert(d, "i2s.gguf")
        out = self.p("o.gguf")
        err = run("quantize", src, out, "--type", "tq2_0", check=1).stderr.decode()
        self.assertIn("--round-scales", err)
        self.assertEqual(glob.glob(self.p("o.gguf*")), [])
        run("quantize", src, out, "--type", "tq2_0", "--round-scales")
        self.validate(out)
        # TQ blocks with different scales cannot become one I2_S scale.
        g = GGUFFile(out)
        t = g.info("blk.1.ffn_up.weight")
        with open(out, "r+b") as f:
            f.seek(t.data_start + 66 * 3 + 64)
            f.write(np.float16(1.5).tobytes())
        err = run("quantize", out, self.p("x.gguf"), "--type", "i2_s", check=1).stderr.decode()
        self.assertIn("blk.1.ffn_up.weight", err)
        self.assertIn("block scales differ", err)
        self.assertEqual(glob.glob(self.p("x.gguf*")), [])
        tq, _ = self.convert(d, "tq.gguf", "--arch", "bitnet")
        err = run("quantize", tq, self.p("x.gguf"), "--type", "i2_s", check=1).stderr.decode()
        self.assertIn("--arch bitnet-b1.58", err)
        err = run("quantize", src, self.p("x.gguf"), "--arch", "bitnet", check=1).stderr.decode()
        self.assertIn("--type tq2_0", err)


class Errors(Base):
    def assert_fails(self, src, *words):
        out = self.p("out.gguf")
        r = run("convert", src, "-o", out, check=1)
        err = r.stderr.decode()
        for w in words:
            self.assertIn(w, err)
        self.assertEqual(sum(line.startswith("bitnet: error: ") for line in err.splitlines()), 1, err)
        self.assertEqual(glob.glob(out + "*"), [], "nothing may be left behind")

    def test_missing_and_misshaped_tensors(self):
        self.assert_fails(self.ckpt("a", overrides={"model.layers.1.mlp.up_proj.weight": None}),
                          "model.layers.1.mlp.up_proj.weight", "missing", "blk.1.ffn_up.weight")
        bad = hf.to_bf16(np.ones((768, 128), np.float32))
        self.assert_fails(self.ckpt("b", overrides={"model.layers.0.mlp.gate_proj.weight": bad}),
                          "model.layers.0.mlp.gate_proj.weight", "[768, 128]", "expected [768, 256]")
        self.assert_fails(self.ckpt("c", "packed", overrides={"model.layers.0.self_attn.q_proj.weight_scale": None}),
                          "model.layers.0.self_attn.q_proj.weight_scale", "missing")
        codes = np.full((64, 256), 0xFF, np.uint8)  # code 3 everywhere
        self.assert_fails(self.ckpt("d", "packed", overrides={"model.layers.0.self_attn.q_proj.weight": codes}),
                          "model.layers.0.self_attn.q_proj.weight", "code 3", "file offset")
        self.assert_fails(self.ckpt("e", overrides={"model.norm.weight": np.zeros(256, np.int8)}),
                          "model.norm.weight", "I8")

    def test_bad_files(self):
        d = self.ckpt("a")
        st = os.path.join(d, "model.safetensors")
        data = read(st)
        write(st, data[:len(data) // 2])
        self.assert_fails(d, "model.safetensors", "run past the data section")
        write(st, data[:8] + b"x" + data[9:])
        self.assert_fails(d, "model.safetensors")
        d = self.ckpt("b", shards=2)
        idx = os.path.join(d, "model.safetensors.index.json")
        j = hf.load_json(idx)
        j["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors"
        hf.dump_json(j, idx)
        self.assert_fails(d, "model.norm.weight", "does not hold it")
        d = self.ckpt("c")
        cfg = hf.load_json(os.path.join(d, "config.json"))
        cfg["rope_scaling"] = {"type": "linear", "factor": 2.0}
        hf.dump_json(cfg, os.path.join(d, "config.json"))
        self.assert_fails(d, "config.json", "rope_scaling")
        del cfg["rope_scaling"]
        hf.dump_json(cfg, os.path.join(d, "config.json"))
        os.remove(os.path.join(d, "tokenizer.json"))
        self.assert_fails(d, "tokenizer.json")


class Terminal(Base):
    def test_ctrl_c_removes_partial_output(self):
        d = self.ckpt("big", vocab="llama3" if HAVE_LLAMA3 else "tiny", dim=512, hidden=1536, layers=4, heads=8,
                      vocab_size=None if HAVE_LLAMA3 else 65536)
        out = self.p("out.gguf")
        for attempt in range(3):
            p = subprocess.Popen([BITNET, "convert", d, "-o", out], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            deadline = time.time() + 60
            while not glob.glob(out + ".tmp.*") and p.poll() is None and time.time() < deadline:
                time.sleep(0.0005)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
            if p.returncode == 0:  # finished before the signal: a faster machine; try again
                os.remove(out)
                continue
            self.assertEqual(p.returncode, 1, err.decode())
            self.assertIn("interrupted", err.decode())
            self.assertEqual(glob.glob(out + "*"), [])
            return
        self.skipTest("conversion finished before SIGINT arrived three times")

    def test_progress_bar_only_on_a_terminal(self):
        d = self.ckpt("m")
        r = run("convert", d, "-o", self.p("a.gguf"))
        self.assertNotIn(b"\r", r.stderr)
        self.assertNotIn(b"MB/s", r.stderr)
        master, slave = pty.openpty()
        p = subprocess.Popen([BITNET, "convert", d, "-o", self.p("b.gguf")], stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        text = b""
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            text += chunk
        p.wait(timeout=60)
        os.close(master)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"\r", text)
        self.assertIn(b"MB/s", text)
        self.assertIn(b"100%", text)


if __name__ == "__main__":
    BITNET = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
