#!/usr/bin/env python3
"""Bad command-line input to the real `bitnet` binary: every case exits non-zero with one line.

Usage: cli_inputs_test.py BITNET   (the rows of docs/robustness.md, "CLI flags" and "files named by flags")

Two kinds of failure, both one line on stderr and a non-zero exit, never a signal:
  - usage errors found by CLI11 while parsing (unknown subcommand, missing or unconvertible value, a
    value outside a declared range or set): CLI11's sentence, "Run with --help ...", exit 100-115;
  - bad values or files found by the command: `bitnet: error: <sentence>`, exit 1.
"""
import os
import subprocess
import sys
import tempfile
import unittest

BITNET = None


def run(*args, stdin=None):
    return subprocess.run([BITNET, *args], input=stdin, capture_output=True, timeout=300)


class CliInputs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = os.path.join(cls.tmp.name, "m.gguf")
        subprocess.run([BITNET, "synth", "-o", cls.model, "--layers", "1", "--dim", "128", "--hidden-dim", "256",
                        "--heads", "2", "--kv-heads", "1", "--ctx", "64"], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def usage_error(self, *args, expect):
        p = run(*args)
        self.assertGreaterEqual(p.returncode, 100, (args, p.stderr))
        self.assertIn(expect.encode(), p.stderr, args)
        self.assertNotIn(b"bitnet: error:", p.stderr)

    def one_line_error(self, *args, expect, stdin=None):
        p = run(*args, stdin=stdin)
        self.assertEqual(p.returncode, 1, (args, p.stderr))
        lines = [l for l in p.stderr.decode(errors="replace").splitlines() if not l.startswith("bitnet: note:")]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("bitnet: error: "), p.stderr)
        self.assertIn(expect, lines[0])
        return lines[0]

    def test_usage_errors(self):
        self.usage_error(expect="A subcommand is required")
        self.usage_error("frobnicate", expect="A subcommand is required")
        self.usage_error("eval", "-m", self.model, "--logits-out", "x", expect="--tokens is required")
        self.usage_error("eval", "-m", self.model, "--tokens", "1", "--logits-out", "x", "-c", "abc",
                         expect="Could not convert: --ctx-size = abc")
        self.usage_error("eval", "-m", self.model, "--tokens", "1", "--logits-out", "x", "-t", "5000",
                         expect="Value 5000 not in range 0 to 1024")
        self.usage_error("eval", "-m", self.model, "--tokens", "1", "--logits-out", "x", "--kv-type", "q4",
                         expect="--kv-type")
        self.usage_error("eval", "-m", self.model, "--tokens", "1", "--logits-out", "x", "--bogus", expect="--bogus")
        self.usage_error("run", "-m", self.model, "-p", "x", "-n", "-5", expect="-n")
        self.assertEqual(run("--help").returncode, 0)

    def test_flag_values_checked_by_commands(self):
        self.one_line_error("eval", "-m", self.model, "--tokens", "1,,2", "--logits-out", self.path("o"),
                            expect="--tokens: '' (item 2) is not a token id")
        self.one_line_error("eval", "-m", self.model, "--tokens", "1,-2", "--logits-out", self.path("o"),
                            expect="is not a token id")
        self.one_line_error("eval", "-m", self.model, "--tokens", "99999999999", "--logits-out", self.path("o"),
                            expect="is not a token id")
        self.one_line_error("eval", "-m", self.model, "--tokens", "1,99999", "--logits-out", self.path("o"),
                            expect="token id 99999 is outside the vocabulary")
        self.one_line_error("eval", "-m", self.model, "--tokens", "1", "-c", "-3", "--logits-out", self.path("o"),
                            expect="context size -3 is negative")
        self.one_line_error("eval", "-m", self.model, "--tokens", ",".join(["1"] * 20), "-c", "8",
                            "--logits-out", self.path("o"), expect="exceed the context size of 8 (-c)")
        self.one_line_error("run", "-m", self.model, "-p", "x", "--top-p", "2", expect="--top-p")
        self.one_line_error("chat", "-m", self.model, "--chat-template", "jinja", expect="--chat-template \"jinja\"",
                            stdin=b"")
        self.assertFalse(os.path.exists(self.path("o")))  # failed evals wrote nothing

    def test_files_named_by_flags(self):
        empty = self.path("empty.gguf")
        open(empty, "wb").close()
        self.one_line_error("inspect", self.path("missing.gguf"), expect="cannot open: No such file or directory")
        self.one_line_error("inspect", self.tmp.name, expect="not a regular file")
        self.one_line_error("inspect", "/dev/zero", expect="not a regular file")
        self.one_line_error("inspect", empty, expect="not a GGUF file: 0 bytes")
        self.one_line_error("eval", "-m", self.model, "--tokens", "1", "--logits-out", "/nonexistent/dir/o",
                            expect="/nonexistent/dir")
        self.one_line_error("perplexity", "-m", self.model, "-f", self.path("missing.txt"), expect="cannot open")

    def test_malformed_trace_files_are_one_line_errors(self):
        # `trace --compare` reads JSON that bitnet wrote; a hand-edited one used to abort with an uncaught
        # nlohmann::json type_error (found while writing these tests).
        cases = {"not_json": b"{", "array": b"[1,2]", "no_entries": b"{}",
                 "bad_entry": b'{"entries":[{"name":1,"layer":0,"token":0}]}',
                 "entries_not_array": b'{"entries":5}'}
        for name, body in cases.items():
            with open(self.path(name + ".json"), "wb") as f:
                f.write(body)
            p = run("trace", "--compare", self.path(name + ".json"), self.path(name + ".json"))
            self.assertEqual(p.returncode, 1, (name, p.stderr))
            lines = p.stderr.decode(errors="replace").strip().splitlines()
            self.assertEqual(len(lines), 1, (name, p.stderr))
            self.assertTrue(lines[0].startswith("bitnet: error: "), (name, p.stderr))

    def test_tokenize_any_bytes_on_stdin(self):
        p = run("tokenize", "-m", self.model, "--json", stdin=bytes(range(256)) * 64)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"["))


if __name__ == "__main__":
    BITNET = sys.argv.pop(1)
    unittest.main(verbosity=2)
