#!/usr/bin/env python3
"""Randomly corrupted model files through the real `bitnet` binary (fixed seed).

Usage: cli_corrupt_test.py BITNET [TRIALS]   (default 300 trials x 3 commands, 2 at a time)

Each trial damages a copy of a small synthetic model (bytes in the header, bytes anywhere, truncation,
or an extreme 32/64-bit value) and runs `bitnet inspect`, `bitnet validate` and
`bitnet eval --tokens 1,2,3 --logits-out`. Every run must exit normally (no signal, no timeout, no
sanitizer report) and either succeed or fail the documented way:
  inspect, eval  exit 0, or exit 1 with `bitnet: error: ...` as the one line of stderr that is not a note;
  validate       exit 0 (clean), 1 (findings) or 2 with "unreadable: <message>" for the file.
The in-process test (corrupt_model_test.cc) runs 6000 more trials through the library.
"""
import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

SANITIZER_MARKS = ("Sanitizer", "runtime error:", "terminate called", "Assertion", "core dumped")
TIMEOUT = 60


def synth(bitnet, out, *flags):
    subprocess.run([bitnet, "synth", "-o", out, *flags], check=True, capture_output=True)
    with open(out, "rb") as f:
        return f.read()


def header_end(data):
    """Bytes before the tensor data: the whole header of these small files is within the first 16 KiB."""
    return min(len(data), 16384)


def corrupt(base, rng):
    data = bytearray(base)
    kind = rng.randrange(20)
    if kind < 10:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(header_end(base))] = rng.randrange(256)
        return bytes(data), "header bytes"
    if kind < 14:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), "bytes anywhere"
    if kind < 16:
        return bytes(data[: rng.randrange(len(data))]), "truncated"
    value = rng.choice([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**32, 2**63 - 1, 2**64 - 1, 2**63])
    width = rng.choice([4, 8])
    at = rng.randrange(header_end(base) - width)
    data[at:at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    return bytes(data), "extreme value"


def check(cmd, p, problems, label):
    err = p.stderr
    if p.returncode < 0:
        problems.append(f"{label}: {' '.join(cmd[1:2])} killed by signal {-p.returncode}\n{err[-2000:]}")
        return
    if any(m in err for m in SANITIZER_MARKS):
        problems.append(f"{label}: {cmd[1]} printed a sanitizer/abort report\n{err[-4000:]}")
        return
    lines = [l for l in err.splitlines() if l.strip() and not l.startswith("bitnet: note:")
             and not l.startswith("bitnet eval:")]
    if cmd[1] == "validate":
        if p.returncode not in (0, 1, 2):
            problems.append(f"{label}: validate exited {p.returncode}\n{p.stdout[-1000:]}{err[-1000:]}")
        elif p.returncode == 2 and "unreadable: " not in p.stdout:
            problems.append(f"{label}: validate exit 2 without 'unreadable:'\n{p.stdout[-1000:]}")
        return
    if p.returncode == 0:
        return
    if p.returncode != 1 or len(lines) != 1 or not lines[0].startswith("bitnet: error: "):
        problems.append(f"{label}: {cmd[1]} exited {p.returncode}; stderr is not one 'bitnet: error:' line:\n{err[-2000:]}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    bitnet = sys.argv[1]
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("BITNET_ROBUST_CLI_TRIALS", "300"))
    rng = random.Random(20240601)
    problems, outcomes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        bases = [
            synth(bitnet, os.path.join(tmp, "a.gguf"), "--layers", "1", "--dim", "128", "--hidden-dim", "256",
                  "--heads", "2", "--kv-heads", "1", "--ctx", "64", "--embd-type", "q8_0"),
            synth(bitnet, os.path.join(tmp, "b.gguf"), "--arch", "llama", "--type", "tq2_0", "--layers", "1",
                  "--dim", "256", "--hidden-dim", "256", "--heads", "4", "--kv-heads", "2", "--ctx", "32",
                  "--embd-type", "q8_0"),
        ]
        jobs = []
        for t in range(trials):
            data, how = corrupt(bases[t % len(bases)], rng)
            path = os.path.join(tmp, f"t{t}.gguf")
            with open(path, "wb") as f:
                f.write(data)
            label = f"trial {t} ({how}, kept as {path})"
            jobs.append((label, path, [bitnet, "inspect", path]))
            jobs.append((label, path, [bitnet, "validate", path]))
            jobs.append((label, path, [bitnet, "eval", "-m", path, "--tokens", "1,2,3", "-c", "16", "-t", "1",
                                       "--logits-out", path + ".logits"]))

        def run(job):
            label, path, cmd = job
            try:
                p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                return label, cmd, None
            return label, cmd, p

        with ThreadPoolExecutor(max_workers=int(os.environ.get("BITNET_JOBS", "2"))) as pool:
            for label, cmd, p in pool.map(run, jobs):
                if p is None:
                    problems.append(f"{label}: {cmd[1]} did not finish in {TIMEOUT} s")
                    continue
                key = f"{cmd[1]}:{p.returncode}"
                outcomes[key] = outcomes.get(key, 0) + 1
                check(cmd, p, problems, label)
        print(f"{trials} trials, {len(jobs)} runs; exit codes: " +
              ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
        if problems:
            print(f"{len(problems)} problems; first ones:")
            for pr in problems[:10]:
                print("---\n" + pr)
            # Keep the damaged files of failing trials for reproduction.
            keep = os.path.join(tempfile.gettempdir(), "bitnet-cli-corrupt-failures")
            os.makedirs(keep, exist_ok=True)
            for pr in problems[:10]:
                src = pr.split("kept as ")[1].split(")")[0]
                if os.path.exists(src):
                    subprocess.run(["cp", src, keep])
            print(f"inputs copied to {keep}")
            sys.exit(1)
        for cmd in ("inspect", "eval"):
            if outcomes.get(f"{cmd}:0", 0) == 0 or outcomes.get(f"{cmd}:1", 0) == 0:
                print(f"the trials never made {cmd} both succeed and fail: corruption mix is wrong")
                sys.exit(1)


if __name__ == "__main__":
    main()
