#!/usr/bin/env python3
"""`bitnet pull`, `-hf`, `bitnet ls`, `bitnet rm` against a local mock of the Hugging Face hub (mock_hub.py):
default file choice, redirect to a content host with the sha256 checked, the token kept from the content host,
a transfer cut midway and resumed (bytes counted: nothing is fetched twice), a stalled transfer timing out and
resumed by the next pull, a wrong hash rejected with nothing left in the cache, 401 without a token and with a
wrong one, 404 naming repository and file, two concurrent pulls of one file, and a model run with -hf.

Usage: pull_test.py BITNET_BINARY MODEL_GGUF
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mock_hub import MockHub  # noqa: E402

BITNET = None
MODEL = None
GGUF_NAME = "bitnet-austen-5m.gguf"


class Pull(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(MODEL, "rb") as f:
            cls.gguf = f.read()
        cls.hub = MockHub()
        cls.hub.add_repo("test/austen-gguf", {"README.md": b"# a model\n", "bitnet-austen-5m-f32.bin": b"x" * 100,
                                              GGUF_NAME: cls.gguf})
        cls.hub.add_repo("test/private", {"m-i2_s.gguf": cls.gguf[:200000]}, token="hf_right")
        cls.hub.add_repo("test/tampered", {"m.gguf": cls.gguf[:300000]}, wrong_hash=True)
        cls.hub.add_repo("test/cut", {"m.gguf": cls.gguf[:2000000]})
        cls.hub.add_repo("test/stall", {"m.gguf": cls.gguf[:1000000]})
        cls.hub.add_repo("test/busy", {"m.gguf": cls.gguf[:1500000]})
        cls.hub.add_repo("test/nogguf", {"model.safetensors": b"{}"})
        cls.hub.add_repo("test/oldapi", {"a-tq1_0.gguf": b"GGUF1", "b-tq2_0.gguf": b"GGUF2"},
                         listing_without_revision=True)

    @classmethod
    def tearDownClass(cls):
        cls.hub.close()

    def setUp(self):
        self.cache = tempfile.mkdtemp(prefix="bitnet-cache-")

    def tearDown(self):
        shutil.rmtree(self.cache, ignore_errors=True)

    def bitnet(self, *args, token=None, timeout=120, endpoint=None):
        env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "BITNET_MODEL")}
        env.update({"HF_ENDPOINT": (endpoint or self.hub.endpoint) + "/", "BITNET_CACHE": self.cache})
        if token:
            env["HF_TOKEN"] = token
        return subprocess.run([BITNET, *args], capture_output=True, text=True, env=env, timeout=timeout)

    def cached_files(self):
        return sorted(os.path.relpath(os.path.join(r, f), self.cache) for r, _, fs in os.walk(self.cache) for f in fs
                      if not f.endswith(".lock"))

    def test_default_file_redirect_sha_and_cache(self):
        sha = self.hub.sha(self.gguf)
        before = self.hub.sent.get(sha, 0)
        p = self.bitnet("pull", "test/austen-gguf")
        self.assertEqual(p.returncode, 0, p.stderr)
        path = p.stdout.strip()
        self.assertEqual(path, os.path.join(self.cache, "test--austen-gguf", "main", GGUF_NAME))
        with open(path, "rb") as f:
            self.assertEqual(f.read(), self.gguf)
        self.assertEqual(self.hub.sent[sha] - before, len(self.gguf))
        # Cached: no request reaches the hub or the content host.
        hub_before, sent_before = self.hub.hub_requests, self.hub.sent[sha]
        p = self.bitnet("pull", f"test/austen-gguf:{GGUF_NAME}")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, path), p.stderr)
        self.assertEqual((self.hub.hub_requests, self.hub.sent[sha]), (hub_before, sent_before))
        # Offline (the hub unreachable), the one cached GGUF of the repository answers a pull without :FILE.
        p = self.bitnet("pull", "test/austen-gguf", endpoint="http://127.0.0.1:9")
        self.assertEqual((p.returncode, p.stdout.strip()), (0, path), p.stderr)
        self.assertIn("using the cached", p.stderr)
        ls = json.loads(self.bitnet("ls", "--json").stdout)
        self.assertEqual([(e["repo"], e["file"], e["bytes"], e["partial"]) for e in ls["entries"]],
                         [("test/austen-gguf", GGUF_NAME, len(self.gguf), False)])
        # -hf runs the model from the cache.
        r = self.bitnet("run", "-hf", "test/austen-gguf", "-p", "It is a truth", "-n", "4", "--temp", "0", "-t", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.strip())
        rm = self.bitnet("rm", "test/austen-gguf")
        self.assertEqual(rm.returncode, 0, rm.stderr)
        self.assertEqual(self.cached_files(), [])
        self.assertNotEqual(self.bitnet("rm", "test/austen-gguf").returncode, 0)  # nothing left to remove

    def test_listing_route_without_revision_and_type_preference(self):
        p = self.bitnet("pull", "test/oldapi", "-q")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.strip().endswith("b-tq2_0.gguf"), p.stdout)  # TQ2_0 before TQ1_0

    def test_token_reaches_the_hub_only(self):
        self.hub.auth_seen_by_cdn = False
        p = self.bitnet("pull", "test/private", token="hf_right")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.strip().endswith("m-i2_s.gguf"))
        self.assertFalse(self.hub.auth_seen_by_cdn, "the token was sent on to the content host")

    def test_401_without_and_with_a_wrong_token(self):
        p = self.bitnet("pull", "test/private:m-i2_s.gguf")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("401", p.stderr)
        self.assertIn("set HF_TOKEN", p.stderr)
        p = self.bitnet("pull", "test/private:m-i2_s.gguf", token="hf_wrong")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("401", p.stderr)
        self.assertIn("HF_TOKEN was refused", p.stderr)
        self.assertEqual(self.cached_files(), [])

    def test_404_names_repository_and_file(self):
        p = self.bitnet("pull", "test/austen-gguf:missing.gguf")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("404", p.stderr)
        self.assertIn("test/austen-gguf", p.stderr)
        self.assertIn("missing.gguf", p.stderr)
        p = self.bitnet("pull", "test/no-such-repo")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("404", p.stderr)
        p = self.bitnet("pull", "test/nogguf")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no .gguf file", p.stderr)
        self.assertEqual(self.cached_files(), [])

    def test_wrong_hash_leaves_nothing(self):
        p = self.bitnet("pull", "test/tampered")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sha256", p.stderr)
        self.assertEqual(self.cached_files(), [])

    def test_cut_transfer_resumes_without_refetching(self):
        data = self.hub.repos["test/cut"].files["m.gguf"]
        sha = self.hub.sha(data)
        self.hub.mode[sha] = "cut"
        before, ranges = self.hub.sent.get(sha, 0), len(self.hub.ranges)
        p = self.bitnet("pull", "test/cut")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(p.stdout.strip(), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.hub.sent[sha] - before, len(data))  # every byte sent once
        self.assertEqual(self.hub.ranges[ranges:], [f"bytes={len(data) - len(data) // 2}-"])

    def test_stalled_transfer_times_out_and_the_next_pull_resumes(self):
        data = self.hub.repos["test/stall"].files["m.gguf"]
        sha = self.hub.sha(data)
        self.hub.mode[sha] = "stall"
        before = self.hub.sent.get(sha, 0)
        p = self.bitnet("pull", "test/stall", "--timeout", "1")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("resumes", p.stderr)
        files = self.cached_files()
        self.assertEqual(len(files), 1)
        self.assertTrue(files[0].endswith("m.gguf.part"), files)  # never under the final name
        kept = os.path.getsize(os.path.join(self.cache, files[0]))
        self.assertGreater(kept, 0)
        ls = json.loads(self.bitnet("ls", "--json").stdout)
        self.assertTrue(ls["entries"][0]["partial"])
        self.hub.mode[sha] = "ok"
        p = self.bitnet("pull", "test/stall")
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(p.stdout.strip(), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.hub.sent[sha] - before, len(data))
        self.assertIn(f"bytes={kept}-", self.hub.ranges)

    def test_two_concurrent_pulls_of_one_file(self):
        data = self.hub.repos["test/busy"].files["m.gguf"]
        sha = self.hub.sha(data)
        self.hub.mode[sha] = "slow"
        before = self.hub.sent.get(sha, 0)
        out = [None, None]

        def one(i):
            out[i] = self.bitnet("pull", "test/busy")
        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.hub.mode[sha] = "ok"
        for p in out:
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(out[0].stdout, out[1].stdout)
        with open(out[0].stdout.strip(), "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(self.hub.sent[sha] - before, len(data))  # downloaded once
        self.assertEqual(self.cached_files(), [os.path.join("test--busy", "main", "m.gguf")])

    def test_bad_references(self):
        for ref in ("noslash", "a/b/c", "/x", "a/", "a/b:", "a/b:../../etc/passwd", "a/b c"):
            p = self.bitnet("pull", ref)
            self.assertNotEqual(p.returncode, 0, ref)
            self.assertIn("bitnet: error:", p.stderr, ref)
        p = self.bitnet("run", "-m", MODEL, "-hf", "test/austen-gguf", "-p", "x")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("-m and -hf", p.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    MODEL = os.path.abspath(sys.argv.pop(2))
    BITNET = os.path.abspath(sys.argv.pop(1))
    unittest.main(argv=[sys.argv[0], "-v"])
