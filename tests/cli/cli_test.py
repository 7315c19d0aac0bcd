#!/usr/bin/env python3
"""End-to-end tests of the `bitnet` CLI: exit codes, one-line errors, JSON output, atomic output.

Usage: cli_test.py BITNET_BINARY   (shared data from $BITNET_SHARED_DATA, default ../shared/data)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

BITNET = None
SHARED = os.environ.get("BITNET_SHARED_DATA") or os.path.join(os.path.dirname(__file__), "../../../shared/data")


def run(*args, check=None):
    p = subprocess.run([BITNET, *args], capture_output=True, text=True, errors="replace", timeout=600)
    if check is not None and p.returncode != check:
        raise AssertionError(f"bitnet {' '.join(args)} exited {p.returncode}, expected {check}\n{p.stdout}\n{p.stderr}")
    return p


def tensor_data_offset(path, name):
    """Absolute file offset of a tensor's data, from `bitnet inspect --json`."""
    info = json.loads(run("inspect", "--json", path, check=0).stdout)
    t = next(t for t in info["tensors"] if t["name"] == name)
    return info["data_offset"] + t["offset"], t


class Cli(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def synth(self, name="m.gguf", *extra):
        path = os.path.join(self.dir, name)
        run("synth", "-o", path, "--layers", "4", *extra, check=0)
        return path

    def test_validate_clean_synthetic_exits_0(self):
        path = self.synth()
        p = run("validate", path, check=0)
        self.assertIn("tokenizer.ggml.pre", p.stdout)  # the warning names the pre-tokenizer used
        self.assertIn("llama-bpe", p.stdout)
        j = json.loads(run("validate", "--json", path, check=0).stdout)
        self.assertFalse([f for f in j[0]["findings"] if f["severity"] == "error"])
        run("validate", "--strict", path, check=1)  # the missing pre key is a warning

    def test_validate_flags_scaled_attn_norm(self):
        # The 2B-4T width (4 layers): the real checkpoint's bands apply.
        path = self.synth("ref.gguf", "--dim", "2560", "--hidden-dim", "6912", "--heads", "20",
                          "--kv-heads", "5")
        off, t = tensor_data_offset(path, "blk.1.attn_norm.weight")
        n = t["shape"][0]
        with open(path, "r+b") as f:
            f.seek(off)
            vals = struct.unpack(f"<{n}f", f.read(4 * n))
            f.seek(off)
            f.write(struct.pack(f"<{n}f", *[v * 56 for v in vals]))
        p = run("validate", path, check=1)
        self.assertRegex(p.stdout, r"error\s+norm-range\s+blk\.1\.attn_norm\.weight: mean \|gamma\| 1\.")

    def test_validate_flags_misread_i2s_scale(self):
        path = self.synth()
        off, t = tensor_data_offset(path, "blk.2.ffn_down.weight")
        n = t["shape"][0] * t["shape"][1]
        with open(path, "r+b") as f:
            f.seek(off + n // 4)
            f.write(struct.pack("<f", 1.688e-4))
        p = run("validate", path, check=1)
        self.assertRegex(p.stdout, r"error\s+ternary-scale\s+blk\.2\.ffn_down\.weight: scale 0\.0001688")

    def test_validate_unreadable_exits_2(self):
        good = self.synth()
        bad = os.path.join(self.dir, "bad.gguf")
        with open(bad, "wb") as f:
            f.write(b"GGUF\x03\x00\x00\x00" + b"\xff" * 16)
        p = run("validate", good, bad, check=2)
        self.assertIn("unreadable", p.stdout)
        run("validate", os.path.join(self.dir, "missing.gguf"), check=2)

    def test_inspect_json_and_tensor_stats(self):
        path = self.synth("t.gguf", "--type", "tq2_0", "--arch", "bitnet")
        j = json.loads(run("inspect", "--json", path, "--tensor", "blk.0.attn_*", "--tensor", "output_norm.weight", check=0).stdout)
        self.assertEqual(j["summary"]["architecture"], "bitnet")
        self.assertEqual(j["summary"]["hyperparameters"]["n_layers"], 4)
        self.assertEqual(j["summary"]["tokenizer"]["model"], "gpt2")
        names = [s["name"] for s in j["stats"]]
        self.assertIn("blk.0.attn_q.weight", names)
        self.assertIn("blk.0.attn_sub_norm.weight", names)
        q = next(s for s in j["stats"] if s["name"] == "blk.0.attn_q.weight")
        self.assertEqual(q["codes"]["invalid"], 0)
        self.assertAlmostEqual(q["codes"]["0"] / q["count"], 1 / 3, delta=0.03)
        self.assertIn("scales", q)
        p = run("inspect", path, "--tensor", "nope*", check=1)
        self.assertIn("no tensor matches 'nope*'", p.stderr)

    def test_inspect_reads_llama_cpp_file(self):
        path = os.path.join(SHARED, "gguf/llama-2-tiny-random.gguf")
        if not os.path.exists(path):
            self.skipTest(f"shared data missing: {path}")
        p = run("inspect", path, check=0)
        self.assertIn("architecture: llama", p.stdout)
        self.assertIn("tokenizer: llama", p.stdout)
        self.assertIn("token_embd.weight", p.stdout)

    def test_errors_are_one_line_and_nonzero(self):
        for args in (["inspect", os.path.join(self.dir, "nope.gguf")], ["synth", "-o", "/nonexistent/x.gguf"],
                     ["synth", "-o", os.path.join(self.dir, "x.gguf"), "--type", "q9_9"],
                     ["synth", "-o", os.path.join(self.dir, "x.gguf"), "--dim", "100", "--type", "tq2_0"]):
            p = run(*args)
            self.assertNotEqual(p.returncode, 0, args)
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertTrue(lines[0].startswith("bitnet: error: "), p.stderr)
        # Without a file, inspect reads the default model; a missing one is an error naming what was tried.
        env_missing = {**os.environ, "BITNET_MODEL": os.path.join(self.dir, "absent.gguf")}
        p = subprocess.run([BITNET, "inspect"], capture_output=True, text=True, env=env_missing)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("absent.gguf", p.stderr)
        self.assertNotEqual(run("frobnicate").returncode, 0)
        self.assertNotEqual(run("synth", "-o", "x", "--layers", "many").returncode, 0)
        self.assertEqual(os.listdir(self.dir), [])  # failed synths left nothing behind

    def test_truncated_files_fail_cleanly(self):
        path = self.synth()
        data = open(path, "rb").read()
        for cut in (0, 3, 7, 23, 100, 1000, len(data) // 2, len(data) - 1):
            t = os.path.join(self.dir, f"cut{cut}.gguf")
            open(t, "wb").write(data[:cut])
            p = run("inspect", t)
            self.assertEqual(p.returncode, 1, (cut, p.stderr))
            self.assertIn(t, p.stderr)
            self.assertEqual(run("validate", t).returncode, 2)

    def test_bench_sweeps_like_llama_bench(self):
        path = self.synth()
        j = json.loads(run("bench", "-m", path, "-p", "8,16", "-n", "4", "-d", "0,5", "-t", "1,2", "-r", "2", "--json",
                           "--profile", "--roofline", check=0).stdout)
        self.assertEqual(j["repetitions"], 2)
        self.assertGreater(j["model_bytes"], 0)
        got = [(t["threads"], t["n_depth"], t["test"]) for t in j["tests"]]
        want = [(th, d, name + (f" @ d{d}" if d else "")) for th in (1, 2) for d in (0, 5) for name in ("pp8", "pp16", "tg4")]
        self.assertEqual(got, want)  # every combination, in llama-bench's order
        for t in j["tests"]:
            self.assertEqual(len(t["samples"]), 2, t)
            self.assertTrue(all(v > 0 for v in t["samples"]), t)
            self.assertAlmostEqual(t["tok_s"], sum(t["samples"]) / 2, delta=1e-6 * t["tok_s"])
            p = t["profile"]
            self.assertGreater(p["total_ms"], 0)
            self.assertAlmostEqual(p["linear_ms"] + p["lm_head_ms"] + p["attention_ms"] + p["other_ms"], p["total_ms"],
                                   delta=1e-6 * p["total_ms"])
            self.assertEqual(p["calls"], 2 * (1 if t["n_prompt"] else t["n_gen"]), t)  # one eval per pp, per tg token
            if t["n_gen"]:
                rf = t["roofline"]
                self.assertGreater(rf["stream_gb_s"], 0)
                # The weights read as decoding reads them, after every step of each repetition.
                self.assertEqual(len(rf["weights_gb_s_samples"]), 2)
                self.assertTrue(all(v > 0 for v in rf["weights_gb_s_samples"]))
                self.assertGreater(rf["tg_fraction"], 0)
                # Bytes per generated token: the model (tied head read once) plus the K/V rows of the context; the
                # weights read are all of it but the K/V rows and the embedding row and norms (a few KB).
                self.assertGreater(rf["bytes_per_token"], 0.5 * j["model_bytes"])
                self.assertLessEqual(rf["weights_bytes"], rf["bytes_per_token"])
                self.assertGreater(rf["weights_bytes"], 0.9 * rf["bytes_per_token"] if t["n_depth"] == 0 else 0)
                # The probe's time per read, layers and head apart: together about what its bandwidth says.
                probe = rf["probe_ms_per_read"]
                self.assertGreater(probe["layers"], 0)
                self.assertGreater(probe["lm_head"], 0)
                median_ms = 1e3 * rf["weights_bytes"] / (1e9 * sorted(rf["weights_gb_s_samples"])[0])
                self.assertLess(probe["layers"] + probe["lm_head"], 1.5 * median_ms)
            else:
                self.assertNotIn("roofline", t)
        with_depth = {t["test"]: t["roofline"]["bytes_per_token"] for t in j["tests"] if t["n_gen"] and t["threads"] == 1}
        self.assertGreater(with_depth["tg4 @ d5"], with_depth["tg4"])  # longer context, more K/V read
        # The text report's split of a token against the probe (with --roofline and --profile).
        p = run("bench", "-m", path, "-p", "0", "-n", "4", "-t", "2", "-r", "1", "--roofline", "--profile", check=0)
        split = [l for l in p.stdout.splitlines() if "per token against the probe" in l]
        self.assertEqual(len(split), 1, p.stdout)
        self.assertRegex(split[0], r"^tg4, 2 threads, per token against the probe: layers' products [0-9.]+ ms \(the probe's "
                                   r"reads of them [0-9.]+: [0-9]+ %\), LM head [0-9.]+ ms \([0-9.]+: [0-9]+ %\), serial work")
        # The markdown table: one row per test.
        p = run("bench", "-m", path, "-p", "8", "-n", "0,4", "-t", "1", "-r", "1", check=0)
        rows = [l for l in p.stdout.splitlines() if l.startswith("| bitnet-b1.58 4L")]
        self.assertEqual([r.split("|")[5].strip() for r in rows], ["pp8", "tg4"])

    def test_bench_parallel_takes_turns_with_one_sequence(self):
        # --parallel P adds P sequences decoding together beside the one-sequence test of each length and depth
        # (their repetitions alternate), and prints the ratio between them.
        path = self.synth()
        j = json.loads(run("bench", "-m", path, "-p", "0", "-n", "4,6", "-d", "0,5", "--parallel", "3", "-t", "2", "-r", "2",
                           "--json", "--profile", check=0).stdout)
        got = [(t["n_depth"], t["test"], t["n_parallel"]) for t in j["tests"]]
        want = [(d, f"tg{n}" + (f" x{p}" if p > 1 else "") + (f" @ d{d}" if d else ""), p)
                for d in (0, 5) for n in (4, 6) for p in (1, 3)]
        self.assertEqual(got, want)
        for t in j["tests"]:
            self.assertEqual(len(t["samples"]), 2, t)
            self.assertTrue(all(v > 0 for v in t["samples"]), t)
            self.assertEqual(t["profile"]["calls"], 2 * t["n_gen"], t)  # one batched pass per step, P tokens each
        p = run("bench", "-m", path, "-p", "0", "-n", "4", "--parallel", "1,3", "-t", "2", "-r", "1", check=0)
        self.assertEqual(p.returncode, 0, p.stderr)
        ratio = [l for l in p.stdout.splitlines() if "the tok/s of one sequence" in l]
        self.assertEqual(len(ratio), 1, p.stdout)
        self.assertTrue(ratio[0].startswith("tg4 x3, 2 threads: "), ratio[0])

    def test_bench_rejects_bad_lists(self):
        path = self.synth()
        for args, needle in ((["-p", "8,x"], "-p: 'x' (item 2)"), (["-n", "-1"], "-n: '-1' (item 1)"),
                             (["-t", "1,,2"], "-t: '' (item 2)"), (["-d", "2000000"], "-d: '2000000'"),
                             (["-p", "0", "-n", "0"], "nothing to measure")):
            p = run("bench", "-m", path, "-r", "1", *args)
            self.assertEqual(p.returncode, 1, (args, p.stderr))
            lines = p.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertIn(needle, lines[0])
        # Without -m or --synth, bench measures the default model ($BITNET_MODEL overrides it).
        p = subprocess.run([BITNET, "bench", "-r", "1", "-p", "8", "-n", "0", "--json"], capture_output=True,
                           text=True, env={**os.environ, "BITNET_MODEL": path})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["tests"][0]["n_prompt"], 8)


if __name__ == "__main__":
    BITNET = sys.argv.pop(1)
    unittest.main(verbosity=2)
