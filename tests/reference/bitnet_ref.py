#!/usr/bin/python3
"""Independent float64 reference forward pass for ternary (BitNet b1.58) GGUFs.

Usage:
  bitnet_ref.py MODEL.gguf --tokens 1,2,3 --out LOGITS.f32 [--act-quant none|per-token|q8k]

Writes raw little-endian float32 logits, shape [n_tokens][n_vocab] (row-major),
i.e. the same format as `bitnet eval --logits-out`.

Written from docs/BITNET_FORMATS.md section 4 and notes/llamacpp_facts.md only.
Everything is float64 except the activation quantization of BitLinear, which
emulates the float32 steps of the C kernels so that integer codes match.

Shapes below: T = n_tokens, D = embedding_length, F = feed_forward_length,
H / Hkv = query / key-value heads, hd = head dim, V = vocab.
Weights are (out_features, in_features) = GGUF [ne0=in, ne1=out] reversed.
"""
import argparse
import os
import sys

import numpy as np

sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gguf_min import GGUFFile, GGUFError, TernaryWeight  # noqa: E402

BITNET158 = ("bitnet-b1.58", "bitnet-25")
ARCHES = BITNET158 + ("bitnet", "llama")
LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")
ACT_QUANTS = ("none", "per-token", "q8k")


# ------------------------------------------------------------- hparams --
def hparams(g):
    arch = g.arch
    if arch not in ARCHES:
        raise GGUFError(f"unsupported architecture '{arch}'")
    md = g.metadata

    def key(k, default=None, required=False):
        full = f"{arch}.{k}"
        if full in md:
            return md[full]
        if required:
            raise GGUFError(f"missing metadata key {full}")
        return default

    hp = {"arch": arch}
    hp["D"] = int(key("embedding_length", required=True))
    hp["L"] = int(key("block_count", required=True))
    hp["H"] = int(key("attention.head_count", required=True))
    hp["Hkv"] = int(key("attention.head_count_kv", hp["H"]))
    hp["hd"] = int(key("attention.key_length", hp["D"] // hp["H"]))
    hp["eps"] = float(key("attention.layer_norm_rms_epsilon", required=True))
    hp["rope_base"] = float(key("rope.freq_base", 10000.0))
    hp["n_rot"] = int(key("rope.dimension_count", hp["hd"]))
    hp["rope_neox"] = arch != "llama"        # bitnet* : NEOX, llama : NORM
    # A model read from a Hugging Face folder (tests/convert/hf_reference.py) rotates (i, i + d/2) whatever the
    # GGUF arch, on q/k rows as HF stores them (the GGUF converter permutes them for NORM instead).
    hp["rope_neox"] = getattr(g, "rope_neox", hp["rope_neox"])
    hp["sub_norms"] = arch != "llama"
    att_scale = float(key("attention.scale", 0.0)) if arch == "llama" else 0.0
    hp["kq_scale"] = att_scale if att_scale else 1.0 / np.sqrt(hp["hd"])
    if arch in BITNET158:
        hp["act"] = "relu2"                   # implied by the arch string (spec 3.1)
    elif arch == "bitnet":
        hp["act"] = str(key("hidden_activation", "silu"))
    else:
        hp["act"] = "silu"
    if hp["H"] % hp["Hkv"]:
        raise GGUFError("head_count not a multiple of head_count_kv")
    if hp["n_rot"] > hp["hd"] or hp["n_rot"] % 2:
        raise GGUFError(f"bad rope.dimension_count {hp['n_rot']}")
    # LM head: llama uses output.weight when present; bitnet* always the tied embedding
    hp["lm_head"] = ("output.weight" if arch == "llama" and "output.weight" in g.tensors
                     else "token_embd.weight")
    if arch != "llama" and "output.weight" in g.tensors:
        print(f"bitnet_ref: warning: {arch} file has output.weight; ignored (LM head = "
              "token_embd, as llama.cpp/bitnet.cpp do)", file=sys.stderr)
    return hp


# --------------------------------------------------- activation quantization --
def quant_per_token(x):
    """BitNet I8_S: x (T, K) float64 -> q (T, K) float64 holding ints in
    [-128, 127], s (T,) float64 holding the float32 scale 127/amax."""
    x32 = x.astype(np.float32)
    amax = np.maximum(1e-5, np.abs(x32).max(axis=1).astype(np.float64))
    s = (127.0 / amax).astype(np.float32)                 # double -> stored as float
    q = np.rint(x32 * s[:, None])                          # float32 product, half-to-even
    q = np.clip(q, -128, 127)
    return q.astype(np.float64), s.astype(np.float64)


def quant_q8k(x):
    """llama.cpp Q8_K: x (T, K) -> q (T, nb, 256) float64 ints, d (T, nb)
    float64 holding the float32 d = 1/iscale, iscale = -127/max (max = signed
    value of largest magnitude, first on ties)."""
    T, K = x.shape
    if K % 256:
        raise GGUFError(f"q8k needs K % 256 == 0 (K={K})")
    x32 = x.astype(np.float32).reshape(T, K // 256, 256)
    idx = np.abs(x32).argmax(axis=2)
    mx = np.take_along_axis(x32, idx[..., None], axis=2)[..., 0]   # (T, nb) signed
    zero = mx == 0
    iscale = (np.float32(-127.0) / np.where(zero, np.float32(1), mx)).astype(np.float32)
    q = np.minimum(127.0, np.rint(iscale[..., None] * x32))        # float32 product
    d = (np.float32(1.0) / iscale).astype(np.float32)
    q[zero] = 0.0
    d[zero] = 0.0
    return q.astype(np.float64), d.astype(np.float64)


# ------------------------------------------------------------- linears --
class Linear:
    """One projection: weight (ternary or float), optional bias, optional scale."""

    def __init__(self, g, prefix):
        wname = prefix + ".weight"
        self.ternary = g.is_ternary(wname)
        self.w = g.ternary(wname) if self.ternary else g.dequant(wname)    # (out, in)
        self.bias = g.dequant(prefix + ".bias") if prefix + ".bias" in g.tensors else None
        sname = prefix + ".scale"
        self.scale = float(g.dequant(sname).reshape(-1)[0]) if sname in g.tensors else None

    def _int_wt(self, q):
        """(in, out) contiguous transposed weight for the integer dot, and q in
        the matching dtype.  Ternary codes use float32: every partial sum of
        |q| <= 128 times {-1,0,1} is an integer below 128*K < 2^24 for
        K < 131072, so float32 GEMM is exact (and ~2x faster than float64)."""
        if self.ternary and self.w.codes.shape[1] < 131072:
            return np.ascontiguousarray(self.w.codes.T, dtype=np.float32), q.astype(np.float32)
        W = self.w.codes if self.ternary else self.w
        return np.ascontiguousarray(W.T, dtype=np.float64), q

    def __call__(self, x, mode):
        """x (T, in) float64 -> y (T, out) float64."""
        if mode == "none":
            W = self.w.dense() if self.ternary else self.w
            y = x @ W.T
        elif mode == "per-token":
            q, s = quant_per_token(x)
            Wt, q = self._int_wt(q)                                   # (in, out)
            if self.ternary and self.w.block_d is not None:   # TQ*: sum_b dot_b * d_b
                y = np.zeros((x.shape[0], Wt.shape[1]))
                for b in range(Wt.shape[0] // 256):
                    sl = slice(256 * b, 256 * b + 256)
                    y += (q[:, sl] @ Wt[sl]).astype(np.float64) * self.w.block_d[None, :, b]
            else:                                             # I2_S or float weights
                y = (q @ Wt).astype(np.float64)               # exact integer-valued dots
                if self.ternary:
                    y = y * self.w.scale
            y = y / s[:, None]
        elif mode == "q8k":
            q, d = quant_q8k(x)                                       # (T, nb, 256), (T, nb)
            Wt, q = self._int_wt(q)
            y = np.zeros((x.shape[0], Wt.shape[1]))
            for b in range(q.shape[1]):
                part = (q[:, b, :] @ Wt[256 * b: 256 * b + 256]).astype(np.float64)  # (T, out)
                if self.ternary:
                    part = part * (self.w.scale if self.w.block_d is None else self.w.block_d[:, b])
                y += part * d[:, b:b + 1]
        else:
            raise ValueError(mode)
        if self.bias is not None:
            y = y + self.bias
        if self.scale is not None:
            y = y * self.scale
        return y


# --------------------------------------------------------------- blocks --
def rms_norm(x, w, eps):
    """x (T, n), w (n,): x / sqrt(mean(x^2) + eps) * w."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, n_rot, base, neox, freq_factors=None):
    """x (T, nh, hd); position of row t is t.  Rotates the first n_rot dims.
    NEOX pairs (i, i + n_rot/2); NORM pairs (2i, 2i+1); angle t*base^(-2i/n_rot)."""
    T = x.shape[0]
    half = n_rot // 2
    inv = base ** (-2.0 * np.arange(half) / n_rot)
    if freq_factors is not None:
        inv = inv / freq_factors[:half]
    ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]   # (T, half)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    ia = np.arange(half) if neox else 2 * np.arange(half)
    ib = ia + half if neox else ia + 1
    a, b = x[..., ia], x[..., ib]
    out = x.copy()
    out[..., ia] = a * cos - b * sin
    out[..., ib] = a * sin + b * cos
    return out


def attention(q, k, v, kq_scale):
    """q (T, H, hd), k/v (T, Hkv, hd) -> (T, H*hd); causal softmax; query head
    h uses kv head h // (H/Hkv)."""
    T, H, hd = q.shape
    group = H // k.shape[1]
    k = np.repeat(k, group, axis=1)        # (T, H, hd): head h -> kv head h//group
    v = np.repeat(v, group, axis=1)
    s = np.einsum("thd,uhd->htu", q, k) * kq_scale                 # (H, T, T)
    s = np.where(np.tril(np.ones((T, T), bool))[None], s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    o = np.einsum("htu,uhd->thd", p, v)                            # (T, H, hd)
    return o.reshape(T, H * hd)


def ffn_act(g, kind):
    if kind == "relu2":
        return np.square(np.maximum(g, 0.0))
    if kind in ("silu", "swish", "swiglu"):
        return g / (1.0 + np.exp(-g))
    if kind == "relu":
        return np.maximum(g, 0.0)
    raise GGUFError(f"unsupported hidden_activation '{kind}'")


def default_act_quant(g):
    return "per-token" if g.is_ternary("blk.0.attn_q.weight") else "none"


# -------------------------------------------------------------- forward --
def forward(g, tokens, act_quant=None, lm_chunk=16384):
    """tokens: list of ints -> logits (T, V) float64."""
    hp = hparams(g)
    mode = act_quant or default_act_quant(g)
    if mode not in ACT_QUANTS:
        raise ValueError(f"--act-quant must be one of {ACT_QUANTS}")
    emb = g.info("token_embd.weight")
    V = emb.ne[1]
    tokens = [int(t) for t in tokens]
    if not tokens or min(tokens) < 0 or max(tokens) >= V:
        raise ValueError(f"tokens must be non-empty and in [0, {V})")
    T, H, Hkv, hd, eps = len(tokens), hp["H"], hp["Hkv"], hp["hd"], hp["eps"]
    ff = None
    if hp["arch"] == "llama" and "rope_freqs.weight" in g.tensors:
        ff = g.dequant("rope_freqs.weight")        # llama.cpp freq factors
    # embeddings (no scaling): x (T, D)
    x = np.stack([g.dequant("token_embd.weight", rows=(t, t + 1))[0] for t in tokens])

    for il in range(hp["L"]):
        p = f"blk.{il}."
        nrm = lambda n: g.dequant(p + n + ".weight")                    # noqa: E731
        lin = {n: Linear(g, p + n) for n in LINEARS}
        # --- attention ---
        h = rms_norm(x, nrm("attn_norm"), eps)                           # (T, D)
        q = lin["attn_q"](h, mode).reshape(T, H, hd)
        k = lin["attn_k"](h, mode).reshape(T, Hkv, hd)
        v = lin["attn_v"](h, mode).reshape(T, Hkv, hd)
        q = rope(q, hp["n_rot"], hp["rope_base"], hp["rope_neox"], ff)
        k = rope(k, hp["n_rot"], hp["rope_base"], hp["rope_neox"], ff)
        a = attention(q, k, v, hp["kq_scale"])                            # (T, H*hd)
        if hp["sub_norms"]:
            a = rms_norm(a, nrm("attn_sub_norm"), eps)
        x = x + lin["attn_output"](a, mode)
        # --- feed-forward ---
        h = rms_norm(x, nrm("ffn_norm"), eps)
        f = ffn_act(lin["ffn_gate"](h, mode), hp["act"]) * lin["ffn_up"](h, mode)  # (T, F)
        if hp["sub_norms"]:
            f = rms_norm(f, nrm("ffn_sub_norm"), eps)
        x = x + lin["ffn_down"](f, mode)

    x = rms_norm(x, g.dequant("output_norm.weight"), eps)
    # LM head in float (never quantized), chunked over vocab rows: (T, V)
    head = hp["lm_head"]
    Vh = g.info(head).ne[1]
    logits = np.empty((T, Vh))
    for r0 in range(0, Vh, lm_chunk):
        r1 = min(Vh, r0 + lm_chunk)
        logits[:, r0:r1] = x @ g.dequant(head, rows=(r0, r1)).T
    return logits


def run_reference(model, tokens, act_quant=None):
    return forward(GGUFFile(model), tokens, act_quant)


def parse_tokens(s):
    return [int(t) for t in s.replace(" ", "").split(",") if t]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--tokens", required=True, help="comma-separated token ids")
    ap.add_argument("--out", required=True, help="output: raw float32 [n_tokens][n_vocab]")
    ap.add_argument("--act-quant", choices=ACT_QUANTS, default=None,
                    help="default: per-token for ternary weights, none for float weights")
    a = ap.parse_args(argv)
    g = GGUFFile(a.model)
    logits = forward(g, parse_tokens(a.tokens), a.act_quant)
    logits.astype("<f4").tofile(a.out)
    print(f"bitnet_ref: {g.arch} mode={a.act_quant or default_act_quant(g)} "
          f"T={logits.shape[0]} V={logits.shape[1]} argmax={logits.argmax(axis=1).tolist()[:16]}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
