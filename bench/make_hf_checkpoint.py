#!/usr/bin/python3
"""Writes a Hugging Face BitNet checkpoint folder of any size, one tensor at a time (memory: one tensor).

  make_hf_checkpoint.py OUT_DIR [--preset 2b-4t] [--form master|packed] [--shards N] [--shared DIR]

2b-4t: hidden 2560, 30 layers, 20/5 heads, ff 6912, vocab 128256 (the LLaMA-3 tokenizer from shared data),
bf16 master weights N(0, 1.5) (absmean ~1.2), norm gains with the real checkpoint's profile, tied embedding:
the shape and dtypes of microsoft/bitnet-b1.58-2B-4T-bf16 (4.8 GB of tensors).
"""
import argparse
import os
import sys
import zlib

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "convert"))
import hf_fixture as hf  # noqa: E402

PRESETS = {
    "2b-4t": dict(dim=2560, hidden=6912, layers=30, heads=20, kv_heads=5),
    "tiny": dict(dim=256, hidden=768, layers=2, heads=4, kv_heads=1),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--preset", default="2b-4t", choices=sorted(PRESETS))
    ap.add_argument("--form", default="master", choices=("master", "packed"))
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--shared", default=os.environ.get("BITNET_SHARED_DATA") or os.path.join(HERE, "..", "..",
                                                                                               "shared", "data"))
    a = ap.parse_args()
    P = PRESETS[a.preset]
    dim, hidden, L, H, Hkv = P["dim"], P["hidden"], P["layers"], P["heads"], P["kv_heads"]
    hd = dim // H
    # Tokenizer and config from the fixture (a one-layer dummy checkpoint is written, then replaced).
    hf.make_checkpoint(a.out, a.form, dim=256, hidden=256, layers=1, heads=4, kv_heads=1, vocab="llama3",
                       shared=a.shared)
    for f in os.listdir(a.out):
        if f.endswith(".safetensors") or f.endswith(".index.json"):
            os.remove(os.path.join(a.out, f))
    cfg = hf.load_json(os.path.join(a.out, "config.json"))
    cfg.update(hidden_size=dim, intermediate_size=hidden, num_hidden_layers=L, num_attention_heads=H,
               num_key_value_heads=Hkv)
    hf.dump_json(cfg, os.path.join(a.out, "config.json"), indent=2)
    V = cfg["vocab_size"]

    def rng(name):
        return np.random.default_rng(zlib.crc32(name.encode()))

    def bf16(name, shape, scale):
        return lambda: hf.to_bf16(rng(name).normal(0, scale, shape).astype(np.float32))

    def norm(name, kind, layer, n):
        return lambda: hf.to_bf16(hf.norm_gain(rng(name), kind, layer, L, n))

    def packed(name, shape):
        def make():
            codes, s = hf.absmean_ternarize(hf.from_bf16(bf16(name, shape, 1.5)()))
            return hf.pack_ternary(codes), s
        return make

    entries = [("model.embed_tokens.weight", (V, dim), "BF16", bf16("embed", (V, dim), 0.35))]
    shapes = {"self_attn.q_proj": (H * hd, dim), "self_attn.k_proj": (Hkv * hd, dim), "self_attn.v_proj": (Hkv * hd, dim),
              "self_attn.o_proj": (dim, H * hd), "mlp.gate_proj": (hidden, dim), "mlp.up_proj": (hidden, dim),
              "mlp.down_proj": (dim, hidden)}
    for l in range(L):
        p = f"model.layers.{l}."
        entries.append((p + "input_layernorm.weight", (dim,), "BF16", norm(p + "in", "input_layernorm", l, dim)))
        entries.append((p + "post_attention_layernorm.weight", (dim,), "BF16",
                        norm(p + "post", "post_attention_layernorm", l, dim)))
        entries.append((p + "self_attn.attn_sub_norm.weight", (H * hd,), "BF16",
                        norm(p + "asn", "attn_sub_norm", l, H * hd)))
        entries.append((p + "mlp.ffn_sub_norm.weight", (hidden,), "BF16", norm(p + "fsn", "ffn_sub_norm", l, hidden)))
        for lin in hf.LINEARS:
            name, shape = p + lin + ".weight", shapes[lin]
            if a.form == "master":
                entries.append((name, shape, "BF16", bf16(name, shape, 1.5)))
            else:
                make = packed(name, shape)
                cache = {}
                entries.append((name, (shape[0] // 4, shape[1]), "U8", lambda m=make, c=cache: c.setdefault("v", m())[0]))
                entries.append((p + lin + ".weight_scale", (1,), "BF16",
                                lambda c=cache: hf.to_bf16(np.array([c.pop("v")[1]]))))
    entries.append(("model.norm.weight", (dim,), "BF16", norm("norm", "norm", 0, dim)))

    per = (len(entries) + a.shards - 1) // a.shards
    weight_map = {}
    for i in range(a.shards):
        fname = f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors" if a.shards > 1 else "model.safetensors"
        part = entries[i * per:(i + 1) * per]
        hf.write_safetensors(os.path.join(a.out, fname), part, {"format": "pt"})
        weight_map.update({e[0]: fname for e in part})
        print(f"wrote {fname} ({len(part)} tensors)", file=sys.stderr)
    if a.shards > 1:
        hf.dump_json({"metadata": {}, "weight_map": weight_map}, os.path.join(a.out, "model.safetensors.index.json"),
                     indent=2)


if __name__ == "__main__":
    main()
