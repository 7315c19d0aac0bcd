#!/usr/bin/python3
"""What quantizing the LM head at load (--lm-head q8|q6|q4) does to a model's next-token distributions.

For each format, against the head as stored, over the same positions of a text: mean and 99th-percentile
KL(stored || quantized) in nats, how often the most likely token is the same, the change in the log-probability
of the text's actual next token (mean, and the mean |change|), and perplexity of both. Runs through the Python
module (the library's C API), one token at a time, so every position's whole distribution is compared.

    bench/lm_head_quality.py [-m MODEL] [-f TEXT] [--tokens N] [--windows W] [--json] [--formats q8,q6,q4]

Text: N tokens from each of W evenly spaced places in the file (default: the trained model and held-out
Persuasion from the shared data, 4 x 256 tokens).
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
import bitnet  # noqa: E402


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def distributions(path, head, windows, threads):
    """Log-probabilities [positions][vocab] of every window's tokens (after the first of each)."""
    rows = []
    with bitnet.Model(path, lm_head=head, n_threads=threads, n_ctx=max(len(w) for w in windows) + 1) as m:
        for ids in windows:
            m.reset()
            for i, t in enumerate(ids[:-1]):
                m.eval([t])
                rows.append(log_softmax(m.logits()))
    return np.array(rows)


def main():
    shared = os.environ.get("BITNET_SHARED_DATA", os.path.join(HERE, "..", "..", "shared", "data"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=None, help="GGUF model (default: the trained model)")
    ap.add_argument("-f", "--file", default=os.path.join(shared, "text", "austen", "persuasion.txt"))
    ap.add_argument("--tokens", type=int, default=256, help="tokens per window")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--formats", default="q8,q6,q4")
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.file):
        sys.exit(f"lm_head_quality: {a.file} not found (set BITNET_SHARED_DATA or give -f)")
    text = open(a.file, encoding="utf-8").read()
    with bitnet.Model(a.model, n_ctx=16) as m:
        path, ids = m.path, m.tokenize(text, add_bos=False)
        bos = m.info.bos
    need = a.tokens * a.windows
    if len(ids) < need:
        sys.exit(f"lm_head_quality: {a.file} has {len(ids)} tokens, fewer than {a.windows} x {a.tokens}")
    step = (len(ids) - a.tokens) // max(1, a.windows - 1) if a.windows > 1 else 0
    windows = [([bos] if bos >= 0 else []) + ids[w * step:w * step + a.tokens] for w in range(a.windows)]
    targets = np.array([t for w in windows for t in w[1:]])

    base = distributions(path, "f16", windows, a.threads)
    idx = np.arange(len(targets))
    base_lp = base[idx, targets]
    out = {"model": path, "text": a.file, "positions": int(len(targets)),
           "stored": {"ppl": float(np.exp(-base_lp.mean()))}, "formats": {}}
    p_base = np.exp(base)
    for head in [h for h in a.formats.split(",") if h]:
        q = distributions(path, head, windows, a.threads)
        kl = (p_base * (base - q)).sum(axis=1)
        lp = q[idx, targets]
        out["formats"][head] = {
            "kl_mean": float(kl.mean()), "kl_p99": float(np.percentile(kl, 99)), "kl_max": float(kl.max()),
            "same_top1": float((base.argmax(axis=1) == q.argmax(axis=1)).mean()),
            "dlogp_mean": float((lp - base_lp).mean()), "dlogp_abs_mean": float(np.abs(lp - base_lp).mean()),
            "ppl": float(np.exp(-lp.mean())),
        }
    if a.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['model']}: {out['positions']} positions of {os.path.basename(a.file)}; stored head PPL "
          f"{out['stored']['ppl']:.4f}")
    print(f"{'head':6} {'KL mean':>10} {'KL p99':>10} {'KL max':>10} {'same top-1':>10} {'mean dlogp':>11} "
          f"{'mean |dlogp|':>12} {'PPL':>10}")
    for head, r in out["formats"].items():
        print(f"{head:6} {r['kl_mean']:10.2e} {r['kl_p99']:10.2e} {r['kl_max']:10.2e} {100 * r['same_top1']:9.2f}% "
              f"{r['dlogp_mean']:+11.2e} {r['dlogp_abs_mean']:12.2e} {r['ppl']:10.4f}")


if __name__ == "__main__":
    main()
