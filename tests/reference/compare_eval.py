#!/usr/bin/python3
"""Compare the engine's logits with the float64 reference.

Usage:
  compare_eval.py BITNET_BIN MODEL.gguf --tokens 1,2,3 [--act-quant none|per-token|q8k]
                  [--tol 1e-4] [--kv-type f32] [--require-argmax] [--keep DIR]

Runs  BITNET_BIN eval -m MODEL --tokens ... --logits-out FILE [--act-quant M] [--kv-type K]
and bitnet_ref.forward() on the same tokens; both give [T][V] logits.  Each
position is converted to log-softmax (float64) and the max |difference| of
log-probabilities over all positions and tokens is compared with --tol.
Exit status: 0 ok, 1 above tolerance (or argmax mismatch with --require-argmax),
2 the engine failed or wrote a file of the wrong size.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitnet_ref as ref  # noqa: E402
from gguf_min import GGUFFile  # noqa: E402


def log_softmax(z):
    """z (T, V) -> (T, V) float64 log-probabilities."""
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def main(argv=None):
    ap = argparse.ArgumentParser(description="engine vs reference logits")
    ap.add_argument("bin")
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--act-quant", choices=ref.ACT_QUANTS, default=None,
                    help="passed to both; when omitted each uses its own default")
    ap.add_argument("--tol", type=float, default=1e-4, help="max |dlogprob| allowed")
    ap.add_argument("--kv-type", default="f32", help="engine --kv-type ('' to omit)")
    ap.add_argument("--engine-arg", action="append", default=[], help="extra engine argument")
    ap.add_argument("--require-argmax", action="store_true", help="fail on any argmax mismatch")
    ap.add_argument("--keep", help="directory to keep engine.f32 / ref.f32")
    a = ap.parse_args(argv)

    tokens = ref.parse_tokens(a.tokens)
    work = a.keep or tempfile.mkdtemp(prefix="bitnet_cmp_")
    os.makedirs(work, exist_ok=True)
    eng_path = os.path.join(work, "engine.f32")
    if os.path.exists(eng_path):
        os.remove(eng_path)
    cmd = [a.bin, "eval", "-m", a.model, "--tokens", ",".join(map(str, tokens)), "--logits-out", eng_path]
    if a.act_quant:
        cmd += ["--act-quant", a.act_quant]
    if a.kv_type:
        cmd += ["--kv-type", a.kv_type]
    cmd += a.engine_arg
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    t_eng = time.time() - t0
    if r.returncode != 0 or not os.path.exists(eng_path):
        print(f"engine failed (rc={r.returncode}): {' '.join(cmd)}\n{r.stderr[-2000:]}", file=sys.stderr)
        if not a.keep:
            if os.path.exists(eng_path):
                os.remove(eng_path)
            os.rmdir(work)
        return 2

    g = GGUFFile(a.model)
    mode = a.act_quant or ref.default_act_quant(g)
    t0 = time.time()
    want = ref.forward(g, tokens, a.act_quant)                     # (T, V) float64
    t_ref = time.time() - t0
    T, V = want.shape
    got = np.fromfile(eng_path, dtype="<f4")
    if got.size != T * V:
        print(f"engine logits have {got.size} floats, expected {T}x{V}={T * V}", file=sys.stderr)
        return 2
    got = got.reshape(T, V)
    if a.keep:
        want.astype("<f4").tofile(os.path.join(work, "ref.f32"))
    else:
        os.remove(eng_path)
        os.rmdir(work)
    if not np.isfinite(got).all():
        print("engine logits contain NaN/Inf", file=sys.stderr)
        return 1

    lg, lw = log_softmax(got), log_softmax(want)
    diff = np.abs(lg - lw)                                         # (T, V)
    per_pos = diff.max(axis=1)
    am_g, am_w = got.argmax(axis=1), want.argmax(axis=1)
    agree = int((am_g == am_w).sum())
    worst = int(per_pos.argmax())
    # KL(ref || engine) per position, a tolerance-free summary
    kl = (np.exp(lw) * (lw - lg)).sum(axis=1)
    print(f"model {os.path.basename(a.model)} arch={g.arch} T={T} V={V} act-quant(ref)={mode}")
    print(f"max |dlogprob| = {diff.max():.3e} (position {worst}), mean = {diff.mean():.3e}, "
          f"max raw-logit diff = {np.abs(got - want).max():.3e}")
    print(f"max KL(ref||engine) = {kl.max():.3e}; argmax agreement {agree}/{T}"
          + ("" if agree == T else f" (mismatch at {np.nonzero(am_g != am_w)[0].tolist()[:10]})"))
    print(f"time: engine {t_eng:.2f} s, reference {t_ref:.2f} s")
    ok = diff.max() <= a.tol and (agree == T or not a.require_argmax)
    print(f"{'OK' if ok else 'FAIL'}: tol {a.tol:g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
