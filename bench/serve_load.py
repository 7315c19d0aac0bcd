#!/usr/bin/env python3
"""Bounded load test of `bitnet serve`: C concurrent clients send N requests of mixed lengths (chat and
completions, some streaming, some abandoned midway by their client, streaming or not), then the report: unexpected errors,
time to first token (p50/p99, streaming requests), aggregate generated tokens per second, and the server's
resident memory after warm-up and at the end.

Usage: serve_load.py [--bitnet BIN] [-m MODEL] [--parallel 8] [--clients 16] [--requests 400]
                     [--max-tokens 96] [--threads 0] [--seed 1] [--json OUT] [--check [--no-rss-check]]
  Starts its own server on a free loopback port (and stops it). --check: exit 1 unless there were no
  unexpected errors, every sequence was released, and resident memory grew by at most 10 % (and at most
  32 MiB) from the end of warm-up (the first quarter of the requests) to the end.
Only the Python standard library; prompts come from $BITNET_SHARED_DATA/text (Austen), else this repository's
README.
"""
import argparse
import http.client
import json
import os
import queue
import random
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def corpus_words():
    shared = os.environ.get("BITNET_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
    p = os.path.join(shared, "text", "austen", "emma.txt")
    if os.path.isfile(p):
        with open(p, encoding="utf-8", errors="replace") as f:
            return f.read().split()
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read().split()


class Server:
    def __init__(self, bitnet, args):
        cmd = [bitnet, "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 120
        lines = []
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"listening on http://[^:]+:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if " ready " in line:
                break
        if self.port is None or self.proc.poll() is not None:
            self.proc.kill()
            sys.exit("serve_load: the server did not start:\n" + "".join(lines))
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        return r.status, body

    def n_tokens(self, text):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("POST", "/tokenize", body=json.dumps({"content": text}), headers={"Content-Type": "application/json"})
        n = len(json.loads(c.getresponse().read())["tokens"])
        c.close()
        return n

    def metric(self, name):
        _, text = self.get("/metrics")
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def make_requests(n, seed, max_tokens, words):
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        n_words = rng.choice([3, 8, 20, 60, 150])
        start = rng.randrange(0, max(1, len(words) - n_words))
        text = " ".join(words[start:start + n_words])
        body = {"max_tokens": rng.randint(4, max_tokens), "temperature": rng.choice([0, 0.7, 1.0]), "seed": i}
        chat = rng.random() < 0.5
        if chat:
            body["messages"] = [{"role": "user", "content": text}]
        else:
            body["prompt"] = text
        r = rng.random()
        mode = "disconnect" if r < 0.1 else "abandon" if r < 0.15 else "stream" if r < 0.55 else "whole"
        if mode in ("disconnect", "stream"):
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        reqs.append({"i": i, "path": "/v1/chat/completions" if chat else "/v1/completions", "body": body,
                     "mode": mode, "drop_after": rng.randint(1, 4)})
    return reqs


def run_one(port, req):
    """Sends one request; returns its record (error: an unexpected outcome, else None)."""
    rec = {"i": req["i"], "mode": req["mode"], "error": None, "ttft": None, "tokens": 0}
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        c.request("POST", req["path"], body=json.dumps(req["body"]), headers={"Content-Type": "application/json"})
        if req["mode"] == "abandon":  # a non-streaming client that gives up 10-40 ms after asking
            time.sleep(0.01 * req["drop_after"])
            c.sock.close()
            return rec
        r = c.getresponse()
        if r.status != 200:
            rec["error"] = f"status {r.status}: {r.read()[:300]!r}"
            return rec
        if req["mode"] == "whole":
            j = json.loads(r.read())
            rec["tokens"] = j["usage"]["completion_tokens"]
            fr = j["choices"][0]["finish_reason"]
            if fr not in ("stop", "length") or rec["tokens"] > req["body"]["max_tokens"]:
                rec["error"] = f"finish_reason {fr}, {rec['tokens']} tokens"
            rec["total"] = time.perf_counter() - t0
            return rec
        buf, events, done, finish, usage = b"", 0, False, None, None
        while not done:
            data = r.read1(65536)
            if not data:
                break
            buf += data
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                if not ev.startswith(b"data: "):
                    rec["error"] = f"not an event: {ev[:100]!r}"
                    return rec
                payload = ev[6:]
                if payload == b"[DONE]":
                    done = True
                    break
                j = json.loads(payload)
                if "error" in j:
                    rec["error"] = f"error event: {j}"
                    return rec
                if j.get("usage"):
                    usage = j["usage"]
                for ch in j.get("choices", []):
                    text = ch.get("text") if "text" in ch else ch.get("delta", {}).get("content")
                    if ch.get("finish_reason"):
                        finish = ch["finish_reason"]
                    elif text is not None and "role" not in ch.get("delta", {}):
                        events += 1
                        if rec["ttft"] is None:
                            rec["ttft"] = time.perf_counter() - t0
                if req["mode"] == "disconnect" and events >= req["drop_after"]:
                    c.sock.close()  # the client goes away mid-stream
                    rec["tokens"] = events
                    return rec
        if not done or finish not in ("stop", "length") or usage is None:
            rec["error"] = f"stream ended: done={done} finish={finish} usage={usage}"
        else:
            rec["tokens"] = usage["completion_tokens"]
        rec["total"] = time.perf_counter() - t0
        return rec
    except Exception as e:  # noqa: BLE001 - every failure is a finding of the load test
        rec["error"] = f"{type(e).__name__}: {e}"
        return rec
    finally:
        c.close()


def percentile(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bitnet", default=os.path.join(ROOT, "build", "release", "apps", "bitnet"))
    ap.add_argument("-m", "--model")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--no-rss-check", action="store_true",
                    help="with --check: skip the memory check (sanitizer builds: ASan holds freed memory in its "
                         "quarantine, so resident memory grows without a leak; LeakSanitizer checks at exit)")
    a = ap.parse_args()

    server_args = ["--parallel", str(a.parallel), "-t", str(a.threads), "--max-queue", str(4 * a.clients)]
    if a.model:
        server_args += ["-m", a.model]
    s = Server(a.bitnet, server_args)
    reqs = make_requests(a.requests, a.seed, a.max_tokens, corpus_words())
    # Every prompt fits the context with room to spare (whatever text the words came from): at most 256 tokens.
    for r in reqs:
        key = "prompt" if "prompt" in r["body"] else None
        text = r["body"]["prompt"] if key else r["body"]["messages"][0]["content"]
        while s.n_tokens(text) > 256:
            words = text.split()
            text = " ".join(words[: len(words) * 3 // 4]) if len(words) > 1 else text[: len(text) // 2]
        if key:
            r["body"]["prompt"] = text
        else:
            r["body"]["messages"][0]["content"] = text
    todo = queue.Queue()
    for r in reqs:
        todo.put(r)
    records, lock = [], threading.Lock()
    warm_n = max(1, a.requests // 4)
    rss = {"start": rss_kib(s.proc.pid), "warm": None, "peak": 0}
    stop_sampling = threading.Event()

    def sampler():
        while not stop_sampling.is_set():
            rss["peak"] = max(rss["peak"], rss_kib(s.proc.pid))
            time.sleep(0.05)

    def client():
        while True:
            try:
                r = todo.get_nowait()
            except queue.Empty:
                return
            rec = run_one(s.port, r)
            with lock:
                records.append(rec)
                if len(records) == warm_n:
                    rss["warm"] = rss_kib(s.proc.pid)

    threading.Thread(target=sampler, daemon=True).start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    # Abandoned streams are dropped at their next step; wait for every slot to be released.
    deadline = time.time() + 30
    while time.time() < deadline and s.metric("bitnet_active_sequences") != 0:
        time.sleep(0.05)
    active = s.metric("bitnet_active_sequences")
    generated = s.metric("bitnet_generated_tokens_total")
    rss["end"] = rss_kib(s.proc.pid)
    stop_sampling.set()
    health, _ = s.get("/health")
    exit_code = s.stop()

    errors = [r for r in records if r["error"]]
    ttft = [r["ttft"] for r in records if r["ttft"] is not None and r["mode"] == "stream"]
    received = sum(r["tokens"] for r in records)
    growth = rss["end"] - rss["warm"]
    report = {
        "requests": len(records), "clients": a.clients, "parallel": a.parallel,
        "modes": {m: sum(r["mode"] == m for r in records) for m in ("whole", "stream", "disconnect", "abandon")},
        "unexpected_errors": len(errors), "error_examples": [r["error"] for r in errors[:5]],
        "wall_s": round(wall, 3),
        "ttft_p50_ms": round(1000 * percentile(ttft, 50), 1) if ttft else None,
        "ttft_p99_ms": round(1000 * percentile(ttft, 99), 1) if ttft else None,
        "tokens_received": received, "tokens_generated_server": generated,
        "aggregate_tok_s": round(generated / wall, 1) if generated else None,
        "rss_kib": {"start": rss["start"], "after_warmup": rss["warm"], "end": rss["end"], "peak": rss["peak"]},
        "rss_growth_after_warmup_kib": growth,
        "active_sequences_after": active, "health_after": health, "server_exit": exit_code,
    }
    print(json.dumps(report, indent=2))
    if a.json:
        with open(a.json + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(a.json + ".tmp", a.json)
    if a.check:
        problems = []
        if errors:
            problems.append(f"{len(errors)} unexpected errors, e.g. {errors[0]['error']}")
        if active != 0:
            problems.append(f"{active} sequences still active after the load")
        if health != 200 or exit_code != 0:
            problems.append(f"health {health}, exit {exit_code}")
        if not a.no_rss_check and growth > min(32 * 1024, 0.10 * rss["warm"]) and growth > 4 * 1024:
            problems.append(f"resident memory grew {growth} KiB after warm-up ({rss['warm']} -> {rss['end']} KiB)")
        if problems:
            sys.exit("serve_load: " + "; ".join(problems))


if __name__ == "__main__":
    main()
