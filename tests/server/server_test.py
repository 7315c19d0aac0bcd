#!/usr/bin/env python3
"""`bitnet serve` end to end, on loopback, with the trained default model: OpenAI response shapes, streaming,
continuous batching (concurrent greedy requests give what each gives alone, which is what `bitnet run`
gives), prefix reuse, cancellation on disconnect, the queue limit, the API key, and error objects.

Also: the official `openai` npm client (pinned below) works unchanged, and every `curl` line of the README's
Server section runs as written (only the port differs when 8080 is taken).

Usage: server_test.py BITNET_BINARY [ORACLE_DIR]   (ORACLE_DIR: where npm installs the openai client)
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BITNET = None
ORACLES = None
OPENAI_NPM = "openai@6.30.1"
HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
TRAINED = os.path.join(HERE, "..", "..", "models", "bitnet-austen-5m.gguf")  # the default model's file


class Server:
    def __init__(self, *args, port=0):
        self.proc = subprocess.Popen([BITNET, "serve", "--port", str(port), "-t", "1", *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 60
        lines = []
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if "ready" in line:
                break
        if self.port is None:
            self.stop()
            raise AssertionError("server did not start:\n" + "".join(lines))
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError("server did not stop on SIGTERM")
        self.proc.stderr.close()
        # SIGTERM is a clean stop: exit status 0 (under the sanitizers, also no leak or error at exit).
        assert self.proc.returncode == 0, f"server exited with {self.proc.returncode}"

    def request(self, method, path, body=None, headers=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        return r.status, dict(r.getheaders()), text

    def post(self, path, body, **kw):
        status, headers, text = self.request("POST", path, body, **kw)
        return status, headers, json.loads(text) if text else None

    def stream(self, path, body):
        """The events of a streaming request (parsed JSON) and whether [DONE] closed it."""
        status, _, text = self.request("POST", path, body)
        assert status == 200, text
        events, done = [], False
        for block in text.split("\n\n"):
            if not block.strip():
                continue
            assert block.startswith("data: "), block
            payload = block[len("data: "):]
            if payload == "[DONE]":
                done = True
            else:
                events.append(json.loads(payload))
        return events, done

    def metric(self, name):
        _, _, text = self.request("GET", "/metrics")
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None


def raw_post(path, body):
    """The bytes of a POST of `body` (JSON) to `path`, for tests that drive the socket themselves."""
    data = json.dumps(body)
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n{data}").encode()


PROMPTS = ["It is a truth universally acknowledged, that", "In the beginning God created",
           "Elizabeth looked at her sister and said,", "The evening was fine, and"]


def run_greedy(prompt, n):
    p = subprocess.run([BITNET, "run", "-p", prompt, "-n", str(n), "--temp", "0", "--json", "-t", "1"],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


class Serve(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s = Server("--parallel", "4")

    @classmethod
    def tearDownClass(cls):
        cls.s.stop()

    def test_health_models_tokenize(self):
        status, _, text = self.s.request("GET", "/health")
        self.assertEqual((status, json.loads(text)), (200, {"status": "ok"}))
        status, _, models = self.s.post("/tokenize", {"content": "Anne"})
        self.assertEqual(status, 200)
        status, _, back = self.s.post("/detokenize", {"tokens": models["tokens"]})
        self.assertEqual(back, {"content": "Anne"})
        status, _, text = self.s.request("GET", "/v1/models")
        j = json.loads(text)
        self.assertEqual(j["object"], "list")
        self.assertEqual(j["data"][0]["object"], "model")

    def test_completion_equals_bitnet_run(self):
        want = run_greedy(PROMPTS[0], 24)
        status, _, j = self.s.post("/v1/completions", {"prompt": PROMPTS[0], "max_tokens": 24, "temperature": 0})
        self.assertEqual(status, 200, j)
        self.assertEqual(j["object"], "text_completion")
        self.assertEqual(j["choices"][0]["text"], want["text"])
        self.assertEqual(j["choices"][0]["finish_reason"], "length")
        self.assertEqual(j["usage"]["prompt_tokens"], len(want["prompt_ids"]))
        self.assertEqual(j["usage"]["completion_tokens"], 24)
        # Token ids as the prompt give the same.
        status, _, k = self.s.post("/v1/completions", {"prompt": want["prompt_ids"], "max_tokens": 24,
                                                       "temperature": 0})
        self.assertEqual(k["choices"][0]["text"], want["text"])

    def test_concurrent_requests_match_sequential(self):
        # Continuous batching: four greedy streams decoding together give what each gives alone.
        want = [run_greedy(p, 32)["text"] for p in PROMPTS]
        got = [None] * len(PROMPTS)

        def one(i):
            events, done = self.s.stream("/v1/completions", {"prompt": PROMPTS[i], "max_tokens": 32,
                                                             "temperature": 0, "stream": True})
            got[i] = "".join(e["choices"][0]["text"] for e in events if e["choices"])
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(got, want)

    def test_chat_stream_shape_and_usage(self):
        body = {"messages": [{"role": "system", "content": "You are Jane Austen."},
                             {"role": "user", "content": "Describe Bath."}],
                "max_completion_tokens": 12, "stream": True, "stream_options": {"include_usage": True},
                "temperature": 0.7, "seed": 5}
        events, done = self.s.stream("/v1/chat/completions", body)
        self.assertTrue(done)
        self.assertEqual(events[0]["choices"][0]["delta"]["role"], "assistant")
        self.assertTrue(all(e["object"] == "chat.completion.chunk" for e in events))
        finals = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
        self.assertEqual(len(finals), 1)
        self.assertEqual(finals[0]["choices"][0]["finish_reason"], "length")
        usage = events[-1]["usage"]
        self.assertEqual(events[-1]["choices"], [])
        self.assertEqual(usage["completion_tokens"], 12)
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
        # The same seed gives the same text, streamed or not.
        body["stream"] = False
        status, _, j = self.s.post("/v1/chat/completions", body)
        self.assertEqual(j["choices"][0]["message"]["content"], text)
        self.assertEqual(j["choices"][0]["message"]["role"], "assistant")

    def test_next_turn_reuses_the_cache(self):
        msgs = [{"role": "user", "content": "Tell me about Mr. Knightley."}]
        _, _, a = self.s.post("/v1/chat/completions", {"messages": msgs, "max_tokens": 16, "temperature": 0})
        msgs += [{"role": "assistant", "content": a["choices"][0]["message"]["content"]},
                 {"role": "user", "content": "And Emma?"}]
        _, _, b = self.s.post("/v1/chat/completions", {"messages": msgs, "max_tokens": 4, "temperature": 0})
        cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        self.assertGreater(cached, a["usage"]["prompt_tokens"] - 1)

    def test_stop_strings_and_logprobs(self):
        want = run_greedy(PROMPTS[1], 40)["text"]
        stop = want[10:14]
        cut = want.find(stop)
        _, _, j = self.s.post("/v1/completions", {"prompt": PROMPTS[1], "max_tokens": 40, "temperature": 0,
                                                  "stop": [stop], "logprobs": 2})
        self.assertEqual(j["choices"][0]["text"], want[:cut])
        self.assertEqual(j["choices"][0]["finish_reason"], "stop")
        lp = j["choices"][0]["logprobs"]
        self.assertEqual(len(lp["tokens"]), len(lp["token_logprobs"]))
        for chosen, top in zip(lp["token_logprobs"], lp["top_logprobs"]):
            self.assertLessEqual(chosen, 0)
            self.assertEqual(len(top), 2)
            self.assertAlmostEqual(chosen, max(top.values()), places=4)  # greedy takes the best
        _, _, c = self.s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                                       "max_tokens": 3, "logprobs": True, "top_logprobs": 3})
        content = c["choices"][0]["logprobs"]["content"]
        self.assertEqual(len(content), 3)
        self.assertEqual(len(content[0]["top_logprobs"]), 3)

    def test_bad_requests_are_openai_errors(self):
        cases = [
            ({"prompt": "x", "n": 2}, 400, "n"),
            ({"prompt": "x", "temperature": "hot"}, 400, "temperature"),
            ({"prompt": "x", "max_tokens": -1}, 400, "max_tokens"),
            ({"prompt": "x", "stop": [1]}, 400, "stop"),
            ({"prompt": "x", "stream": "yes"}, 400, "stream"),
            ({"max_tokens": 3}, 400, "prompt"),
            ({"prompt": [1, 999999]}, 400, "prompt"),
            ({"prompt": "x " * 2000}, 400, "prompt"),
        ]
        for body, status, param in cases:
            st, _, j = self.s.post("/v1/completions", body)
            self.assertEqual(st, status, (body, j))
            self.assertEqual(j["error"]["param"], param, j)
            self.assertIn("message", j["error"])
        st, _, j = self.s.post("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]})
        self.assertEqual((st, j["error"]["param"]), (400, "messages[0].role"))
        st, _, text = self.s.request("POST", "/v1/completions", raw="{not json")
        self.assertEqual(st, 400)
        self.assertIn("not valid JSON", json.loads(text)["error"]["message"])
        st, _, text = self.s.request("GET", "/v1/nothing")
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(text)["error"]["type"], "not_found_error")
        st, headers, text = self.s.request("GET", "/v1/completions")
        self.assertEqual((st, headers.get("Allow")), (405, "POST"))
        st, headers, text = self.s.request("POST", "/health", {})
        self.assertEqual((st, headers.get("Allow")), (405, "GET"))
        # Unknown fields are ignored.
        st, _, j = self.s.post("/v1/completions", {"prompt": "x", "max_tokens": 1, "frobnicate": {"a": 1}})
        self.assertEqual(st, 200, j)

    def test_disconnect_cancels(self):
        # The server computes at most a few tokens ahead of what the client has taken; once the client is
        # gone its sequence is dropped, long before max_tokens.
        before = self.s.metric("bitnet_generated_tokens_total")
        sock = socket.create_connection(("127.0.0.1", self.s.port))
        sock.sendall(raw_post("/v1/completions", {"prompt": PROMPTS[2], "max_tokens": 480, "stream": True,
                                                  "temperature": 0, "ignore": "x" * 10}))
        got = b""
        while b"data: " not in got:  # the first token has been sent
            got += sock.recv(4096)
        sock.close()
        deadline = time.time() + 30
        while time.time() < deadline and self.s.metric("bitnet_active_sequences") != 0:
            time.sleep(0.05)
        self.assertEqual(self.s.metric("bitnet_active_sequences"), 0)
        generated = self.s.metric("bitnet_generated_tokens_total")
        self.assertLess(generated - before, 100)
        time.sleep(0.3)
        self.assertEqual(self.s.metric("bitnet_generated_tokens_total"), generated)

    def test_metrics(self):
        self.s.post("/v1/completions", {"prompt": "x", "max_tokens": 2})
        _, headers, text = self.s.request("GET", "/metrics")
        for name in ("bitnet_requests_total{endpoint=\"/v1/completions\",status=\"200\"}",
                     "bitnet_time_to_first_token_seconds_bucket", "bitnet_inter_token_latency_seconds_count",
                     "bitnet_queue_depth", "bitnet_active_sequences", "bitnet_kv_cache_cells_used",
                     "bitnet_prompt_tokens_total", "bitnet_generated_tokens_total"):
            self.assertIn(name, text)


class NonStreamingDisconnect(unittest.TestCase):
    """A non-streaming client that goes away cancels its sequence too, though nothing is written to it until
    the end, and clients that leave while their requests wait for a slot (streaming or not) take them out of
    the queue: the trained
    model grown to a shape that decodes ~40x slower (same logits; 270 MB), so that the 480 tokens asked for
    take seconds and the clients can leave in the middle."""

    def test_disconnect_cancels_non_streaming(self):
        # Uncancelled, greedy decoding of this prompt runs to max_tokens (no end of text before 480), so a
        # short count below can only come from the cancellation. The 5M model gives the grown model's tokens.
        alone = subprocess.run([BITNET, "run", "-m", TRAINED, "-p", PROMPTS[2], "-n", "480", "--temp", "0", "--json",
                                "-t", "1"], capture_output=True, text=True, check=True)
        self.assertEqual(json.loads(alone.stdout)["stop"], "length")
        with tempfile.TemporaryDirectory() as d:
            grown = os.path.join(d, "grown.gguf")
            subprocess.run([BITNET, "synth", "--grow", TRAINED, "--dim", "2048", "--hidden-dim", "8192", "--layers",
                            "16", "--heads", "16", "--kv-heads", "8", "-o", grown], check=True, capture_output=True)
            s = Server("-m", grown, "--parallel", "1")
            try:
                before = s.metric("bitnet_generated_tokens_total")
                request = raw_post("/v1/completions", {"prompt": PROMPTS[2], "max_tokens": 480, "temperature": 0})

                def wait_for(cond, seconds):
                    deadline = time.monotonic() + seconds
                    while time.monotonic() < deadline and not cond():
                        time.sleep(0.05)
                    return cond()

                with socket.create_connection(("127.0.0.1", s.port)) as running:
                    running.sendall(request)
                    self.assertTrue(wait_for(lambda: s.metric("bitnet_generated_tokens_total") - before >= 10, 120))
                    # Two more requests wait for the only slot, one of them streaming (it has written nothing
                    # yet either); their clients leave: the requests leave the queue at once.
                    with socket.create_connection(("127.0.0.1", s.port)) as queued, \
                            socket.create_connection(("127.0.0.1", s.port)) as queued_stream:
                        queued.sendall(request)
                        queued_stream.sendall(
                            raw_post("/v1/completions", {"prompt": PROMPTS[1], "max_tokens": 480, "stream": True}))
                        self.assertTrue(wait_for(lambda: s.metric("bitnet_queue_depth") == 2, 60))
                    self.assertTrue(wait_for(lambda: s.metric("bitnet_queue_depth") == 0, 10))
                    # ... while the first one still runs (it would have to end to free the slot otherwise)
                    self.assertLess(s.metric("bitnet_generated_tokens_total") - before, 480)
                    self.assertEqual(s.metric("bitnet_active_sequences"), 1)
                left = time.monotonic()  # its socket is closed: the first client has gone too
                self.assertTrue(wait_for(lambda: s.metric("bitnet_active_sequences") == 0, 60))
                self.assertLess(s.metric("bitnet_generated_tokens_total") - before, 240)  # long before 480
                self.assertLess(time.monotonic() - left, 10)
                # The two non-streaming requests whose clients left are counted apart (nginx's 499).
                self.assertTrue(wait_for(lambda: s.metric(
                    'bitnet_requests_total{endpoint="/v1/completions",status="499"}') == 2, 10))
                # A client that stays gets its whole answer from the same server afterwards, chat included.
                for path, body in (("/v1/completions", {"prompt": PROMPTS[2]}),
                                   ("/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPTS[0]}]})):
                    st, _, j = s.post(path, {**body, "max_tokens": 8, "temperature": 0})
                    self.assertEqual(st, 200, j)
                    self.assertEqual(j["usage"]["completion_tokens"], 8, j)
            finally:
                s.stop()


class Staggered(unittest.TestCase):
    """--parallel 8, requests arriving at different times, mixed lengths and endpoints, greedy and seeded:
    each answer equals the same request run alone on an idle server."""

    def test_parallel_8_equals_one_at_a_time(self):
        import random
        rng = random.Random(7)
        shared = os.environ.get("BITNET_SHARED_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data"))
        emma = os.path.join(shared, "text", "austen", "emma.txt")
        with open(emma if os.path.isfile(emma) else README, encoding="utf-8") as f:
            words = f.read().split()
        requests = []
        for i in range(20):
            n = rng.randint(1, 60)  # at most a few hundred tokens: every prompt fits the 512-token context
            start = rng.randint(0, len(words) - n)
            text = " ".join(words[start:start + n])
            body = {"max_tokens": rng.randint(1, 48), "temperature": 0 if i % 3 else 0.8, "seed": i}
            if i % 2:
                body["messages"] = [{"role": "user", "content": text}]
                path = "/v1/chat/completions"
            else:
                body["prompt"] = text
                path = "/v1/completions"
            body["stream"] = i % 4 == 1
            requests.append((path, body, rng.uniform(0, 1.0)))

        def run(s, path, body):
            if body.get("stream"):
                events, done = s.stream(path, body)
                assert done
                key = "delta" if "chat" in path else None
                return "".join((e["choices"][0]["delta"].get("content", "") if key else e["choices"][0]["text"])
                               for e in events if e["choices"])
            st, _, j = s.post(path, body)
            assert st == 200, j
            c = j["choices"][0]
            return c["message"]["content"] if "chat" in path else c["text"]

        s = Server("--parallel", "8", "--chunk", "16")
        try:
            got = [None] * len(requests)

            def one(i):
                time.sleep(requests[i][2])
                got[i] = run(s, requests[i][0], requests[i][1])
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            want = [run(s, path, body) for path, body, _ in requests]  # one at a time, same server
        finally:
            s.stop()
        alone = Server("--parallel", "1")
        try:
            fresh = [run(alone, path, body) for path, body, _ in requests[:6]]  # a fresh server, one slot
        finally:
            alone.stop()
        self.assertEqual(got, want)
        self.assertEqual(want[:6], fresh)


class Speculative(unittest.TestCase):
    """--lookup and -md: drafts (from each request's context, or from a draft model for every decoding request
    at once) verified inside the batch; every answer equals the same request on a server without them, greedy
    and seeded, streamed or not, with stop strings and limits."""

    def test_speculative_servers_equal_plain_server(self):
        passage = ("Emma Woodhouse, handsome, clever, and rich, with a comfortable home and happy disposition, "
                   "seemed to unite some of the best blessings of existence.")
        texts = [passage + " " + passage + " Emma Woodhouse,", "I am sure I am sure I am", PROMPTS[0],
                 "\"Poor Miss Taylor!\" said Emma. \"Poor Miss Taylor!\" said", PROMPTS[1]]
        requests = []
        for i, text in enumerate(texts * 2):
            body = {"prompt": text, "max_tokens": [1, 9, 40, 64][i % 4], "temperature": 0 if i % 3 else 0.9,
                    "seed": 100 + i, "stream": i % 2 == 1}
            if i == 4:
                body["stop"] = ["Taylor", "\n"]
            requests.append(body)

        def run(s, body):
            if body["stream"]:
                events, done = s.stream("/v1/completions", body)
                assert done
                return "".join(e["choices"][0]["text"] for e in events if e["choices"])
            st, _, j = s.post("/v1/completions", body)
            assert st == 200, j
            return j["choices"][0]["text"]

        plain = Server("--parallel", "4")
        try:
            want = [run(plain, b) for b in requests]
        finally:
            plain.stop()
        # The draft model is the default model's own file: its greedy drafts are what a greedy request samples
        # (all kept) and often not what a seeded one does (some rejected).
        for flags in (["--lookup", "--draft-fixed"], ["--lookup"], ["-md", TRAINED, "--draft-fixed"], ["-md", TRAINED]):
            s = Server("--parallel", "4", *flags)
            try:
                got = [None] * len(requests)

                def one(i):
                    got[i] = run(s, requests[i])
                threads = [threading.Thread(target=one, args=(i,)) for i in range(len(requests))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                alone = [run(s, b) for b in requests]  # one at a time, with the slots' caches warm
                drafted = s.metric("bitnet_speculative_drafted_total")
                accepted = s.metric("bitnet_speculative_accepted_total")
            finally:
                s.stop()
            self.assertEqual(got, want, flags)
            self.assertEqual(alone, want, flags)
            if "--draft-fixed" in flags:  # drafting in full: drafts both kept and rejected
                self.assertGreater(accepted, 0)
                self.assertLess(accepted, drafted)

    def test_draft_model_must_share_the_vocabulary(self):
        with tempfile.TemporaryDirectory() as d:
            other = os.path.join(d, "other.gguf")
            subprocess.run([BITNET, "synth", "-o", other, "--vocab", "tiny"], check=True, capture_output=True)
            p = subprocess.run([BITNET, "serve", "--port", "0", "-md", other], capture_output=True, text=True,
                               timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("speculative decoding needs one vocabulary", p.stderr)
        p = subprocess.run([BITNET, "serve", "--port", "0", "--lookup", "-md", TRAINED], capture_output=True,
                           text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("excludes", p.stderr)


class OpenAIClient(unittest.TestCase):
    def test_official_openai_npm_client(self):
        if not ORACLES:
            self.skipTest("no oracle folder given")
        p = subprocess.run([os.path.join(HERE, "..", "oracles", "install.sh"), ORACLES, OPENAI_NPM],
                           capture_output=True, text=True)
        if p.returncode == 77:
            self.skipTest(p.stdout.strip())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        s = Server("--api-key", "sesame-4")
        try:
            q = subprocess.run(["node", os.path.join(HERE, "openai_client.mjs"), ORACLES,
                                f"http://127.0.0.1:{s.port}/v1", "sesame-4"], capture_output=True, text=True,
                               timeout=300)
        finally:
            s.stop()
        self.assertEqual(q.returncode, 0, q.stderr)
        out = json.loads(q.stdout)
        want = run_greedy("It is a truth universally acknowledged, that", 24)
        self.assertEqual(out["completion"], want["text"])
        self.assertEqual(out["completion_usage"]["prompt_tokens"], len(want["prompt_ids"]))
        self.assertIn("temperature", out["bad_request"])


class ReadmeCurl(unittest.TestCase):
    """Every line of the README's Server section that starts with `curl` runs as written against a server
    started the same way (`bitnet serve`, port 8080, or another free port when 8080 is taken)."""

    def test_readme_curl_examples(self):
        with open(README, encoding="utf-8") as f:
            text = f.read()
        section = text[text.index("\n## Server"):]
        section = section[:section.index("\n## ", 1)]
        lines = []
        for block in re.findall(r"```sh\n(.*?)```", section, re.S):
            cmd = ""
            for line in block.splitlines():  # join continued lines
                cmd += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
                if not line.endswith("\\"):
                    if cmd.strip().startswith("curl "):
                        lines.append(cmd.split("  #")[0].strip())
                    cmd = ""
        self.assertGreaterEqual(len(lines), 4, "the README's Server section should show curl examples")
        with socket.socket() as probe:
            taken = probe.connect_ex(("127.0.0.1", 8080)) == 0
        try:
            s = Server(port=0 if taken else 8080)
        except AssertionError:  # 8080 was taken in the meantime
            s = Server()
        try:
            for cmd in lines:
                run = cmd if s.port == 8080 else cmd.replace("localhost:8080", f"localhost:{s.port}")
                p = subprocess.run(["bash", "-c", "set -o pipefail; " + run], capture_output=True, text=True,
                                   timeout=120)
                self.assertEqual(p.returncode, 0, f"{cmd}\n{p.stderr}")
                out = p.stdout.strip()
                self.assertTrue(out, cmd)
                if out.startswith("data: "):  # a stream: every event is JSON, the last is [DONE]
                    events = [b[len("data: "):] for b in out.split("\n\n")]
                    self.assertEqual(events[-1], "[DONE]", cmd)
                    for e in events[:-1]:
                        json.loads(e)
                elif out.startswith("{"):
                    j = json.loads(out)
                    self.assertNotIn("error", j, cmd)
        finally:
            s.stop()


class Limits(unittest.TestCase):
    def test_queue_full_is_503_with_retry_after(self):
        s = Server("--parallel", "1", "--max-queue", "0")
        try:
            body = {"prompt": PROMPTS[0], "max_tokens": 300, "stream": True, "temperature": 0}
            t = threading.Thread(target=s.stream, args=("/v1/completions", body))
            t.start()
            deadline = time.time() + 30
            while time.time() < deadline and s.metric("bitnet_active_sequences") != 1:
                time.sleep(0.02)
            st, headers, j = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
            self.assertEqual(st, 503, j)
            self.assertEqual(headers.get("Retry-After"), "1")
            self.assertEqual(j["error"]["code"], "queue_full")
            t.join()
        finally:
            s.stop()

    def test_stalled_client_times_out_and_others_are_served(self):
        s = Server("--timeout", "2")
        try:
            stalled = socket.create_connection(("127.0.0.1", s.port))
            stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
            st, _, j = s.post("/v1/completions", {"prompt": "x", "max_tokens": 2})  # served meanwhile
            self.assertEqual(st, 200, j)
            stalled.settimeout(20)
            t0 = time.time()
            try:
                while stalled.recv(4096):  # whatever it answers, the server closes the connection
                    pass
            except ConnectionResetError:
                pass
            self.assertLess(time.time() - t0, 10)
            stalled.close()
        finally:
            s.stop()

    def test_body_over_the_limit_is_413(self):
        s = Server("--max-body", "1000")
        try:
            st, _, text = s.request("POST", "/v1/completions", raw=json.dumps({"prompt": "x" * 2000}))
            self.assertEqual(st, 413)
            self.assertEqual(json.loads(text)["error"]["code"], "request_too_large")
        finally:
            s.stop()

    def test_api_key(self):
        s = Server("--api-key", "sesame")
        try:
            st, _, j = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
            self.assertEqual(st, 401)
            self.assertEqual(j["error"]["code"], "invalid_api_key")
            st, _, j = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1},
                              headers={"Authorization": "Bearer wrong"})
            self.assertEqual(st, 401)
            st, _, j = s.post("/v1/completions", {"prompt": "x", "max_tokens": 1},
                              headers={"Authorization": "Bearer sesame"})
            self.assertEqual(st, 200, j)
            self.assertEqual(s.request("GET", "/health")[0], 200)  # open for load balancers
        finally:
            s.stop()


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    BITNET = os.path.abspath(sys.argv.pop(1))
    if len(sys.argv) == 2:
        ORACLES = os.path.abspath(sys.argv.pop(1))
    unittest.main(argv=[sys.argv[0], "-v"])
