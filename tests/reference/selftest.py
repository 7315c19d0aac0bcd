#!/usr/bin/python3
"""Self-checks of the reference (no C++ engine needed, only `bitnet synth`).

Usage: selftest.py [--bin PATH_TO_bitnet] [--keep DIR]
Last line: "N passed, M failed"; exit status 1 when anything failed.
"""
import argparse
import cmath
import math
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep tests/reference free of __pycache__
sys.path.insert(0, HERE)
import bitnet_ref as ref  # noqa: E402
from gguf_min import GGUFFile, decode_i2s, decode_tq1_0, decode_tq2_0  # noqa: E402

DEFAULT_BIN = os.path.join(HERE, "..", "..", "build", "release", "apps", "bitnet")
RESULTS = []


def check(name, cond, detail=""):
    RESULTS.append(bool(cond))
    print(f"[{'PASS' if cond else 'FAIL'}] {name}{(': ' + detail) if detail else ''}")


# ------------------------------------------------- tiny GGUF writer (tests) --
def _s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b


_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
        10: "<Q", 11: "<q", 12: "<d"}


def _val(vt, v):
    if vt == 8:
        return _s(v)
    if vt == 9:                      # v = (elem_type, [items])
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(_val(et, i) for i in items)
    return struct.pack(_FMT[vt], v)


def write_gguf(path, kvs, tensors, alignment=32):
    """kvs: [(key, vtype, value)]; tensors: [(name, ne list, type_id, bytes)]."""
    out = struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(kvs))
    out += b"".join(_s(k) + struct.pack("<I", vt) + _val(vt, v) for k, vt, v in kvs)
    off, blobs = 0, []
    for name, ne, tid, data in tensors:
        out += _s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", tid, off)
        pad = (-len(data)) % alignment
        blobs.append(data + b"\0" * pad)
        off += len(data) + pad
    out += b"\0" * ((-len(out)) % alignment)
    with open(path, "wb") as f:
        f.write(out + b"".join(blobs))


def enc_i2s(codes, scale):
    """Spec 1.4: 128-blocks, element j -> byte j%32, bits 6-2*(j//32)."""
    c = (codes.reshape(-1, 4, 32) + 1).astype(np.uint8)
    b = (c[:, 0] << 6) | (c[:, 1] << 4) | (c[:, 2] << 2) | c[:, 3]
    return b.tobytes() + struct.pack("<f", scale) + b"\0" * 28


# ------------------------------------------------------ textbook forward --
def tb_rms(x, w, eps):
    return [xi / math.sqrt(sum(v * v for v in x) / len(x) + eps) * wi for xi, wi in zip(x, w)]


def tb_bitlinear(codes, wscale, x, mode):
    """codes (out, in) ints; x list of floats; direct I8_S emulation."""
    if mode == "none":
        return list((codes * wscale) @ np.array(x))
    xf = [np.float32(v) for v in x]
    amax = max(1e-5, max(abs(float(v)) for v in xf))
    s = np.float32(127.0 / amax)
    q = [min(127, max(-128, round(float(np.float32(v * s))))) for v in xf]  # round(): half-even
    return list((codes @ np.array(q, dtype=np.float64)) * wscale / float(s))


def tb_forward(P, tokens, mode):
    """P: plain dict model (see make_hand_model); returns logits (T, V)."""
    T, H, Hkv, hd, eps = len(tokens), P["H"], P["Hkv"], P["hd"], P["eps"]
    xs = [list(P["emb"][t]) for t in tokens]
    for L in P["layers"]:
        def lin(n, x):
            codes, ws, extra = L[n]
            return [v * extra for v in tb_bitlinear(codes, ws, x, mode)]
        hs = [tb_rms(x, L["attn_norm"], eps) for x in xs]
        qs, ks, vs = [lin("attn_q", h) for h in hs], [lin("attn_k", h) for h in hs], [lin("attn_v", h) for h in hs]
        for t in range(T):           # rope as complex rotation of the chosen pairs
            for vec, nh in ((qs[t], H), (ks[t], Hkv)):
                for hh in range(nh):
                    for i in range(hd // 2):
                        a, b = (i, i + hd // 2) if P["neox"] else (2 * i, 2 * i + 1)
                        a, b = hh * hd + a, hh * hd + b
                        z = complex(vec[a], vec[b]) * cmath.exp(1j * t * P["base"] ** (-2 * i / hd))
                        vec[a], vec[b] = z.real, z.imag
        new = []
        for t in range(T):
            att = []
            for hh in range(H):
                kv = hh // (H // Hkv)
                qv = qs[t][hh * hd:(hh + 1) * hd]
                sc = [sum(a * b for a, b in zip(qv, ks[u][kv * hd:(kv + 1) * hd])) / math.sqrt(hd)
                      for u in range(t + 1)]
                m = max(sc)
                e = [math.exp(v - m) for v in sc]
                att += [sum(e[u] * vs[u][kv * hd + j] for u in range(t + 1)) / sum(e) for j in range(hd)]
            if P["sub"]:
                att = tb_rms(att, L["attn_sub_norm"], eps)
            o = lin("attn_output", att)
            x = [a + b for a, b in zip(xs[t], o)]
            h = tb_rms(x, L["ffn_norm"], eps)
            gt, up = lin("ffn_gate", h), lin("ffn_up", h)
            if P["act"] == "relu2":
                f = [max(g, 0.0) ** 2 * u for g, u in zip(gt, up)]
            else:
                f = [g / (1 + math.exp(-g)) * u for g, u in zip(gt, up)]
            if P["sub"]:
                f = tb_rms(f, L["ffn_sub_norm"], eps)
            new.append([a + b for a, b in zip(x, lin("ffn_down", f))])
        xs = new
    return np.array([P["head"] @ np.array(tb_rms(x, P["out_norm"], eps)) for x in xs])


def make_hand_model(path, arch, seed):
    """1-layer D=128 model written with write_gguf; returns the plain-dict model."""
    rng = np.random.default_rng(seed)
    D, F, V, H, Hkv = 128, 256, 19, 4, 2
    hd = D // H
    f16 = lambda a: a.astype("<f2")                                     # noqa: E731
    P = {"H": H, "Hkv": Hkv, "hd": hd, "eps": float(np.float32(1e-5)), "base": 10000.0,
         "neox": arch != "llama", "sub": arch != "llama", "act": "silu" if arch != "bitnet-b1.58" else "relu2"}
    emb = f16(rng.normal(0, 1, (V, D)))
    P["emb"] = emb.astype(np.float64)
    kv = [("general.architecture", 8, arch), ("general.alignment", 4, 64),
          ("test.nested", 9, (9, [(5, [1, -2, 3]), (5, []), (5, [7])])),
          ("test.strs", 9, (8, ["a", "βγ", ""])), ("test.u64", 10, 2 ** 40 + 3),
          ("test.i8", 1, -5), ("test.f64", 12, 0.125), ("test.bool", 7, True),
          (f"{arch}.embedding_length", 4, D), (f"{arch}.block_count", 4, 1),
          (f"{arch}.feed_forward_length", 4, F), (f"{arch}.attention.head_count", 4, H),
          (f"{arch}.attention.head_count_kv", 4, Hkv), (f"{arch}.rope.freq_base", 6, 10000.0),
          (f"{arch}.attention.layer_norm_rms_epsilon", 6, 1e-5)]
    if arch == "bitnet":
        kv.append(("bitnet.hidden_activation", 8, "silu"))
    tens = [("token_embd.weight", [D, V], 1, emb.tobytes())]
    L = {}

    def norm(name, n):
        w = rng.uniform(0.5, 1.5, n).astype("<f4")
        L[name] = list(w.astype(np.float64))
        tens.append((f"blk.0.{name}.weight", [n], 0, w.tobytes()))

    def linear(name, n_in, n_out):
        codes = rng.integers(-1, 2, (n_out, n_in)).astype(np.int8)
        ws = float(np.float32(rng.uniform(0.5, 2.0)))
        extra = 1.0
        if arch == "bitnet-b1.58":
            tens.append((f"blk.0.{name}.weight", [n_in, n_out], 36, enc_i2s(codes.ravel(), ws)))
        else:
            tens.append((f"blk.0.{name}.weight", [n_in, n_out], 0,
                         (codes * np.float32(ws)).astype("<f4").tobytes()))
            if arch == "bitnet":   # optional per-tensor output multiplier
                extra = float(np.float32(rng.uniform(0.5, 1.5)))
                tens.append((f"blk.0.{name}.scale", [1], 0, struct.pack("<f", extra)))
        L[name] = (codes.astype(np.float64), ws, extra)

    norm("attn_norm", D)
    for n, i, o in (("attn_q", D, D), ("attn_k", D, Hkv * hd), ("attn_v", D, Hkv * hd),
                    ("attn_output", D, D), ("ffn_gate", D, F), ("ffn_up", D, F), ("ffn_down", F, D)):
        linear(n, i, o)
    norm("ffn_norm", D)
    if P["sub"]:
        norm("attn_sub_norm", D)
        norm("ffn_sub_norm", F)
    P["layers"] = [L]
    on = rng.uniform(0.5, 1.5, D).astype("<f4")
    P["out_norm"] = list(on.astype(np.float64))
    tens.append(("output_norm.weight", [D], 0, on.tobytes()))
    P["head"] = P["emb"]
    if arch == "llama":
        out = rng.normal(0, 1, (V, D)).astype("<f4")
        P["head"] = out.astype(np.float64)
        tens.append(("output.weight", [D, V], 0, out.tobytes()))
    write_gguf(path, kv, tens, alignment=64)
    return P


# ------------------------------------------------------------------ tests --
def test_unit():
    # per-token quantizer: half-to-even, clamp, 1e-5 floor
    q, s = ref.quant_per_token(np.array([[127.0, 0.5, 1.5, -0.5, 2.5, -127.0], [0.0] * 6]))
    check("per-token quant half-even", list(q[0]) == [127, 0, 2, 0, 2, -127] and s[0] == 1.0
          and not q[1].any() and s[1] == np.float32(127 / 1e-5))
    # q8k vs a scalar emulation of ggml nearest_int (magic number 1.5*2^23)
    rng = np.random.default_rng(3)
    x = rng.normal(0, 3, (3, 512))
    x[1, :256] = 0.0
    x[2, 5] = -50.0
    q, d = ref.quant_q8k(x)
    ok = True
    for t in range(3):
        for b in range(2):
            xb = x[t, 256 * b:256 * b + 256].astype(np.float32)
            amax, mx = np.float32(0), np.float32(0)
            for v in xb:
                if abs(v) > amax:
                    amax, mx = abs(v), v
            if amax == 0:
                ok &= not q[t, b].any() and d[t, b] == 0
                continue
            isc = np.float32(np.float32(-127.0) / mx)
            for j, v in enumerate(xb):
                m = np.array([np.float32(isc * v) + np.float32(12582912.0)], np.float32).view(np.int32)[0]
                ok &= q[t, b, j] == min(127, (int(m) & 0x7FFFFF) - 0x400000)
            ok &= d[t, b] == np.float32(np.float32(1.0) / isc)
    check("q8k quant matches nearest_int emulation", ok)
    # bit-layout spot checks written straight from the spec text
    b = np.zeros(32, np.uint8)
    b[3] = (2 << 6) | (1 << 4) | (0 << 2) | 2
    c = decode_i2s(b, 128)
    check("I2_S layout spot check", [c[3], c[35], c[67], c[99]] == [1, 0, -1, 1] and c[0] == -1)
    blk = np.zeros(66, np.uint8)
    blk[40] = 2 | (0 << 2) | (1 << 4) | (2 << 6)                   # h=1, m=8
    blk[64:66] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)
    c, d = decode_tq2_0(blk, 256)
    check("TQ2_0 layout spot check", [c[136], c[168], c[200], c[232]] == [1, -1, 0, 1] and d[0] == 0.5)
    blk = np.zeros(54, np.uint8)
    enc = lambda tr, pad: (((sum(t * 3 ** (len(tr) - 1 - i) for i, t in enumerate(tr))) * 3 ** pad) * 256 + 242) // 243  # noqa: E731
    blk[2], blk[32 + 5], blk[48 + 1] = enc([2, 0, 1, 2, 1], 0), enc([0, 2, 2, 1, 0], 0), enc([1, 2, 0, 2], 1)
    c, _ = decode_tq1_0(blk, 256)
    check("TQ1_0 layout spot check",
          [c[2 + 32 * k] for k in range(5)] == [1, -1, 0, 1, 0]
          and [c[165 + 16 * k] for k in range(5)] == [-1, 1, 1, 0, -1]
          and [c[241 + 4 * k] for k in range(4)] == [0, 1, -1, 1])
    # rope: NEOX vs NORM
    x = rng.normal(size=(5, 2, 8))
    a, n = ref.rope(x, 8, 10000.0, True), ref.rope(x, 8, 10000.0, False)
    perm = np.array([0, 4, 1, 5, 2, 6, 3, 7])                      # NEOX pair (i,i+4) -> (2i,2i+1)
    pn = ref.rope(x[..., perm], 8, 10000.0, False)
    check("rope NEOX != NORM", np.abs(a - n)[1:].max() > 1e-3)
    check("rope NEOX == NORM on permuted dims, pos0 identity, norm kept",
          np.allclose(pn, a[..., perm], atol=1e-14) and np.array_equal(a[0], x[0])
          and np.allclose(np.linalg.norm(a, axis=-1), np.linalg.norm(x, axis=-1)))


def test_hand(tmp):
    for arch in ("bitnet-b1.58", "bitnet", "llama"):
        path = os.path.join(tmp, f"hand_{arch}.gguf")
        P = make_hand_model(path, arch, seed=11)
        g = GGUFFile(path)
        md = g.metadata
        check(f"hand {arch}: metadata round-trip",
              [list(a) for a in md["test.nested"]] == [[1, -2, 3], [], [7]] and md["test.strs"] == ["a", "βγ", ""]
              and md["test.u64"] == 2 ** 40 + 3 and md["test.i8"] == -5 and md["test.f64"] == 0.125
              and md["test.bool"] is True and g.alignment == 64 and g.data_offset % 64 == 0)
        toks = [3, 0, 18, 7, 7, 12]
        for mode in ("per-token", "none"):
            got = ref.forward(g, toks, mode)
            want = tb_forward(P, toks, mode)
            err = np.abs(got - want).max()
            check(f"hand {arch} {mode}: textbook match", err < 1e-9, f"max|diff|={err:.2e}")


def synth(binary, tmp, name, *args):
    path = os.path.join(tmp, name + ".gguf")
    r = subprocess.run([binary, "synth", "-o", path, *args], capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"synth {args} failed: {r.stderr.strip()}")
    return path


def test_synth(binary, tmp):
    common = ["--layers", "2", "--seed", "5", "--dim", "256", "--hidden-dim", "512", "--heads", "4", "--kv-heads", "2"]
    m = {t: synth(binary, tmp, t, "--type", t, *common) for t in ("i2_s", "tq2_0", "tq1_0", "f32", "f16")}
    g = {t: GGUFFile(p) for t, p in m.items()}
    names = [n for n in g["i2_s"].tensors if g["i2_s"].is_ternary(n)]
    ok = bool(names)
    for n in names:
        w = {t: g[t].ternary(n) for t in ("i2_s", "tq2_0", "tq1_0")}
        for t in ("tq2_0", "tq1_0"):
            ok &= np.array_equal(w[t].codes, w["i2_s"].codes) and np.all(w[t].block_d == w["i2_s"].scale)
        dense = w["i2_s"].dense()
        ok &= np.array_equal(g["f32"].dequant(n), dense) and np.array_equal(g["tq1_0"].dequant(n), dense)
    check(f"synth: I2_S/TQ2_0/TQ1_0/F32 dequant identical ({len(names)} tensors)", ok)
    toks = [1, 5, 200, 9, 44, 44, 300, 2, 17, 100]
    L = {t: ref.forward(g[t], toks, "per-token") for t in g}
    for t in ("tq2_0", "tq1_0", "f32", "f16"):
        check(f"synth: per-token logits {t} == i2_s", np.array_equal(L[t], L["i2_s"]),
              f"max|diff|={np.abs(L[t] - L['i2_s']).max():.2e}")
    Q = {t: ref.forward(g[t], toks, "q8k") for t in ("i2_s", "tq2_0", "tq1_0")}
    check("synth: q8k logits identical across ternary types",
          np.array_equal(Q["tq2_0"], Q["i2_s"]) and np.array_equal(Q["tq1_0"], Q["i2_s"]))
    N = ref.forward(g["f32"], toks)     # default for float weights = none
    check("synth: f32 default (none) == i2_s none", np.array_equal(N, ref.forward(g["i2_s"], toks, "none")))
    d_q = np.abs(Q["i2_s"] - L["i2_s"]).max()
    d_n = np.abs(N - L["i2_s"]).max()
    check("synth: q8k / none differ from per-token but stay close", 0 < d_q < 1 and 0 < d_n < 1,
          f"q8k {d_q:.3g}, none {d_n:.3g}")
    pre = ref.forward(g["i2_s"], toks[:4], "per-token")
    check("synth: causal (prefix logits unchanged)", np.allclose(pre, L["i2_s"][:4], rtol=0, atol=1e-12))
    # model-level rope style: flipping NEOX -> NORM must change logits
    orig = ref.hparams
    ref.hparams = lambda gg: dict(orig(gg), rope_neox=False)
    try:
        flipped = ref.forward(g["i2_s"], toks, "per-token")
    finally:
        ref.hparams = orig
    check("synth: rope NORM changes bitnet logits", np.abs(flipped - L["i2_s"])[1:].max() > 1e-3)
    # bitnet arch: hidden_activation relu2 == bitnet-b1.58 ; absent -> SiLU (differs)
    br = GGUFFile(synth(binary, tmp, "bn_relu", "--arch", "bitnet", "--type", "tq2_0", "--act", "relu2", *common))
    bs = GGUFFile(synth(binary, tmp, "bn_silu", "--arch", "bitnet", "--type", "tq2_0", *common))
    check("synth: bitnet arch relu2 == bitnet-b1.58", np.array_equal(ref.forward(br, toks), L["i2_s"]))
    check("synth: bitnet arch default SiLU differs", np.abs(ref.forward(bs, toks) - L["i2_s"]).max() > 1e-3)
    lt = GGUFFile(synth(binary, tmp, "ll_tied", "--arch", "llama", "--type", "tq2_0", *common))
    lo = GGUFFile(synth(binary, tmp, "ll_out", "--arch", "llama", "--type", "tq2_0", "--output-tensor", *common))
    a, b = ref.forward(lt, toks), ref.forward(lo, toks)
    check("synth: llama runs, output.weight used when present",
          np.isfinite(a).all() and ref.hparams(lo)["lm_head"] == "output.weight" and np.abs(a - b).max() > 1e-3)
    # CLI writes [T][V] float32 equal to forward()
    out = os.path.join(tmp, "cli.f32")
    r = subprocess.run([sys.executable, os.path.join(HERE, "bitnet_ref.py"), m["tq1_0"], "--tokens",
                        ",".join(map(str, toks)), "--out", out], capture_output=True, text=True)
    V = g["i2_s"].info("token_embd.weight").ne[1]
    got = np.fromfile(out, "<f4") if os.path.exists(out) else np.zeros(0)
    check("CLI output [T][V] float32", r.returncode == 0 and got.size == len(toks) * V
          and np.array_equal(got.reshape(len(toks), V), L["i2_s"].astype(np.float32)), r.stderr.strip()[-200:])
    # timing: 4 layers, dim 256, 64 tokens
    p4 = synth(binary, tmp, "t4", "--type", "i2_s", "--layers", "4", "--dim", "256", "--seed", "2")
    t0 = time.time()
    ref.forward(GGUFFile(p4), list(range(64)), "per-token")
    print(f"timing: 4 layers dim 256, 64 tokens, per-token: {time.time() - t0:.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.environ.get("BITNET_BIN", DEFAULT_BIN))
    ap.add_argument("--keep", help="keep generated models in this directory")
    a = ap.parse_args()
    tmp = a.keep or tempfile.mkdtemp(prefix="bitnet_ref_")
    os.makedirs(tmp, exist_ok=True)
    test_unit()
    test_hand(tmp)
    if os.path.exists(a.bin):
        try:
            test_synth(a.bin, tmp)
        except Exception as e:  # noqa: BLE001
            check("synth-model tests", False, repr(e))
    else:
        check("synth-model tests", False, f"binary not found: {a.bin} (build it or pass --bin)")
    if not a.keep:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)
    n_fail = RESULTS.count(False)
    print(f"{len(RESULTS) - n_fail} passed, {n_fail} failed")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
