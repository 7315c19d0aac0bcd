"""The Python module (python/bitnet) against the `bitnet` executable: same token ids, the same logits as
`bitnet eval` (prompt at once and token by token), the same greedy text as `bitnet run --temp 0`, cancellation
by leaving the iterator, and errors as BitnetError with the library's message.

    test_bitnet.py            (BITNET_BIN: the bitnet executable; BITNET_LIBRARY or an installed module;
                               BITNET_SHARED_DATA: ../shared/data)
"""

import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import bitnet

BIN = os.environ.get("BITNET_BIN", "bitnet")
HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("BITNET_SHARED_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
MODEL = os.environ.get("BITNET_MODEL") or os.path.join(HERE, "..", "..", "models", "bitnet-austen-5m.gguf")


def cli(*args):
    return subprocess.run([BIN, *args, "-m", MODEL], check=True, capture_output=True).stdout


def texts():
    """A few passages of the shared texts (or fixed sentences when the shared data is absent)."""
    out = ["It is a truth universally acknowledged, that a single man in possession of a good fortune",
           "In the beginning God created the heaven and the earth.",
           "Naïve café — “quoted” text, 12345 digits\tand\ttabs\n\nnew lines."]
    emma = os.path.join(SHARED, "text", "austen", "emma.txt")
    if os.path.exists(emma):
        with open(emma, encoding="utf-8") as f:
            body = f.read()
        for start in (5000, 60000, 250000):
            out.append(body[start:start + 400])
    return out


def close(a, b):
    """Logits of the same engine through two paths (batched or one token at a time): equal within float
    rounding of the kernels' summation order, far below any difference that changes a sampled token."""
    scale = max(1.0, float(np.abs(b).max()))
    return float(np.abs(a - b).max()) <= 2e-4 * scale


class Module(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = bitnet.Model(MODEL, n_threads=1)

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def setUp(self):
        self.m.reset()

    def test_library_and_info(self):
        self.assertEqual(bitnet.api_version(), "0.2")
        self.assertTrue(os.path.exists(bitnet.library_path()) or "/" not in bitnet.library_path())
        info = self.m.info
        self.assertEqual(info.architecture, "bitnet-b1.58")
        self.assertGreater(info.n_vocab, 0)
        self.assertGreater(info.n_layers, 0)
        self.assertEqual(self.m.n_ctx, min(info.n_ctx_train, 4096))
        self.assertEqual(self.m.n_past, 0)
        ids = self.m.tokenize("x")
        self.assertEqual(ids[0], info.bos)

    def test_tokenize_equals_the_cli(self):
        for text in texts():
            want = [int(t) for t in cli("tokenize", "-p", text).split()]
            self.assertEqual(self.m.tokenize(text), want, text[:40])
            no_bos = [int(t) for t in cli("tokenize", "--no-bos", "-p", text).split()]
            got = self.m.tokenize(text, add_bos=False)
            self.assertEqual(got, no_bos)
            self.assertEqual(self.m.detokenize(got), text)  # byte-level BPE round-trips any text
            self.assertEqual(self.m.tokenize(text.encode("utf-8"), add_bos=False), got)

    def test_logits_equal_bitnet_eval(self):
        for text in texts()[:4]:
            ids = self.m.tokenize(text)[:120]
            with tempfile.TemporaryDirectory() as d:
                path = os.path.join(d, "logits.f32")
                cli("eval", "-t", "1", "--tokens", ",".join(map(str, ids)), "--logits-out", path)
                want = np.fromfile(path, dtype=np.float32).reshape(len(ids), self.m.info.n_vocab)
            # The whole prompt in one call: the last row.
            self.m.reset()
            self.m.eval(ids)
            got = self.m.logits()
            self.assertEqual((got.shape, got.dtype), ((self.m.info.n_vocab,), np.float32))
            self.assertTrue(close(got, want[-1]), float(np.abs(got - want[-1]).max()))
            self.assertEqual(self.m.n_past, len(ids))
            # Token by token: every row.
            self.m.reset()
            for i, t in enumerate(ids):
                self.m.eval([t])
                self.assertTrue(close(self.m.logits(), want[i]), (i, float(np.abs(self.m.logits() - want[i]).max())))
            # The array is a copy: the next eval does not change it.
            before = got.copy()
            self.m.eval([ids[1]])
            np.testing.assert_array_equal(got, before)

    def test_generate_equals_bitnet_run(self):
        for prompt in ["It is a truth universally acknowledged, that", "And God said,", "Mr. Knightley"]:
            pieces = list(self.m.generate(prompt, 24, temperature=0))
            self.assertGreater(len(pieces), 1)
            want = cli("run", "-p", prompt, "-n", "24", "--temp", "0", "-t", "1", "--lm-head", "f16").decode("utf-8")
            self.assertEqual(prompt + "".join(pieces) + "\n", want)

    def test_lm_head_formats_equal_bitnet_run(self):
        # lm_head reaches the engine through the C API: each format gives bitnet run's text with the same head
        # ("auto", run's default, is q6 for this F16 head).
        prompt = "It is a truth universally acknowledged, that"
        texts = {}
        for head, flag in (("auto", []), ("q4", ["--lm-head", "q4"]), ("f16", ["--lm-head", "f16"])):
            with bitnet.Model(MODEL, lm_head=head, n_threads=1) as m:
                got = prompt + "".join(m.generate(prompt, 48, temperature=0)) + "\n"
            self.assertEqual(got, cli("run", "-p", prompt, "-n", "48", "--temp", "0", "-t", "1", *flag).decode("utf-8"), head)
            texts[head] = got
        with bitnet.Model(MODEL, lm_head="q6", n_threads=1) as m:
            self.assertEqual(prompt + "".join(m.generate(prompt, 48, temperature=0)) + "\n", texts["auto"])
        with self.assertRaises(ValueError):
            bitnet.Model(MODEL, lm_head="q5")

    def test_leaving_the_iterator_cancels(self):
        prompt = "Emma Woodhouse, handsome, clever, and rich,"
        full = "".join(self.m.generate(prompt, 40, temperature=0))
        n_prompt = len(self.m.tokenize(prompt))
        self.m.reset()
        it = self.m.generate(prompt, 400, temperature=0)
        first = [next(it), next(it)]
        it.close()
        self.assertLessEqual(self.m.n_past, n_prompt + 8)  # at most a few tokens ahead of the consumer
        self.assertTrue(full.startswith("".join(first)))
        # The model is usable again, and the cached prefix gives the same text.
        self.assertEqual("".join(self.m.generate(prompt, 40, temperature=0)), full)
        # A break in a for loop closes the iterator too.
        for i, _ in enumerate(self.m.generate(prompt, 400, temperature=0)):
            if i == 3:
                break
        self.assertLessEqual(self.m.n_past, n_prompt + 10)

    def test_one_iterator_at_a_time(self):
        it = self.m.generate("Harriet", 50, temperature=0)
        next(it)
        with self.assertRaises(RuntimeError):
            self.m.eval([1])
        with self.assertRaises(RuntimeError):
            next(self.m.generate("Emma", 5))
        self.m.tokenize("reading is fine")
        it.close()
        self.m.eval([1])

    def test_sample(self):
        self.m.eval(self.m.tokenize("She was"))
        logits = self.m.logits()
        self.assertEqual(self.m.sample(temperature=0), int(np.argmax(logits)))
        # The sampler is seeded when its parameters change and continues its stream while they do not.
        a = [self.m.sample(temperature=1.0, seed=7) for _ in range(8)]
        self.m.sample(temperature=1.0, seed=8)
        b = [self.m.sample(temperature=1.0, seed=7) for _ in range(8)]
        self.assertEqual(a, b)
        self.assertGreater(len(set(a)), 1)  # T=1 over this model's spread: not always one token
        seeded = "".join(self.m.generate("She was", 20, temperature=0.9, seed=11))
        self.assertEqual("".join(self.m.generate("She was", 20, temperature=0.9, seed=11)), seeded)

    def test_errors(self):
        with self.assertRaises(bitnet.BitnetError) as e:
            bitnet.Model("/nonexistent/model.gguf")
        self.assertEqual(e.exception.code, "load")
        self.assertIn("/nonexistent/model.gguf", str(e.exception))
        with tempfile.NamedTemporaryFile(suffix=".gguf") as f:
            f.write(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40)
            f.flush()
            with self.assertRaises(bitnet.BitnetError) as e:
                bitnet.Model(f.name)
            self.assertEqual(e.exception.code, "load")
        with self.assertRaises(bitnet.BitnetError) as e:
            self.m.eval([self.m.info.n_vocab])
        self.assertEqual(e.exception.code, "invalid_argument")
        self.assertIn(str(self.m.info.n_vocab), str(e.exception))
        with self.assertRaises(bitnet.BitnetError) as e:
            self.m.eval([-1])
        self.assertEqual(self.m.n_past, 0)  # nothing was appended
        with self.assertRaises(bitnet.BitnetError):
            bitnet.Model(MODEL, n_threads=-1)
        small = bitnet.Model(MODEL, n_ctx=16, n_threads=1)
        with self.assertRaises(bitnet.BitnetError) as e:
            small.eval(list(range(20)))
        self.assertEqual(e.exception.code, "context_full")
        small.close()
        with self.assertRaises(bitnet.BitnetError):
            small.tokenize("closed")
        small.close()  # twice is fine


class Installed(unittest.TestCase):
    def test_default_model(self):
        # Without a path: $BITNET_MODEL, else the installed (or source tree's) trained model.
        env = dict(os.environ)
        env.pop("BITNET_MODEL", None)
        code = "import bitnet; m = bitnet.Model(n_threads=1); print(m.info.architecture, m.info.n_vocab)"
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
        self.assertEqual(out.stdout.split()[0], "bitnet-b1.58")


if __name__ == "__main__":
    unittest.main(verbosity=2)
