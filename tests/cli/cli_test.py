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
        path = self.synth()
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
        self.assertNotEqual(run("inspect").returncode, 0)
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


if __name__ == "__main__":
    BITNET = sys.argv.pop(1)
    unittest.main(verbosity=2)
