"""Writes a trained model as a Hugging Face BitNet directory (what microsoft/bitnet-b1.58-2B-4T-bf16 ships):
config.json (BitNetForCausalLM, AutoBitLinear in online mode), bf16 master weights in model.safetensors,
tokenizer.json, tokenizer_config.json with the chat template, generation_config.json, and training.json.

Scale snapping: each linear weight's absmean (the ternary scale `bitnet convert` derives) is made a value
that fp16 represents, so I2_S (float32 scale) and TQ1_0/TQ2_0 (fp16 block scales) store the same scale
and the three forms give bit-identical logits. Elements move by one bf16 step each (largest steps first,
each element at most once, spread evenly over the tensor) until mean|W| in double rounds to t in float32,
t being the fp16 value nearest the absmean. The reference evaluation and the GGUF both read the exported
weights, so they describe the same model.
"""

import json
import os
import shutil
import struct

import numpy as np
import torch

import bpe

HF_LINEARS = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
              "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}
HF_NORMS = {"attn_norm": "input_layernorm", "attn_sub_norm": "self_attn.attn_sub_norm",
            "ffn_norm": "post_attention_layernorm", "ffn_sub_norm": "mlp.ffn_sub_norm"}


def bf16_ulp(x):
    """The bf16 spacing at |x| (8 significant bits), for non-zero normal x (float64 array)."""
    return np.ldexp(1.0, np.floor(np.log2(np.abs(x))).astype(np.int64) - 7)


def snap_absmean_to_fp16(w):
    """w: bf16 tensor. Returns a bf16 tensor whose float32(mean|w| in double) is an fp16 value."""
    x = w.double().flatten().numpy().copy()
    n = x.size
    s = np.abs(x).sum() / n
    t = float(np.float16(s))
    if not np.isfinite(t) or t == 0:
        raise ValueError(f"absmean {s} has no fp16 neighbour")

    def done(v):
        return float(np.float32(np.abs(v).sum() / n)) == t

    if done(x):
        return w
    # Largest steps first, each element moved at most once, so the change is spread thin.
    moved = np.zeros(n, dtype=bool)
    nz = x != 0
    ulp = np.zeros_like(x)
    ulp[nz] = bf16_ulp(x[nz])
    pow2 = np.zeros(n, dtype=bool)
    pow2[nz] = np.abs(x[nz]) == np.ldexp(1.0, np.floor(np.log2(np.abs(x[nz]))).astype(np.int64))
    for u in sorted(set(ulp[nz].tolist()), reverse=True):
        if done(x):
            break
        d = t * n - np.abs(x).sum()  # how much sum|x| must move
        if u > abs(d):
            continue
        ok = nz & ~moved & (ulp == u)
        if d < 0:
            ok &= ~pow2  # one step down from a power of two is half a step
        cand = np.flatnonzero(ok)
        k = min(len(cand), int(abs(d) // u))
        if k == 0:
            continue
        pick = cand[np.linspace(0, len(cand) - 1, k).astype(np.int64)]
        x[pick] += np.sign(x[pick]) * np.sign(d) * u
        moved[pick] = True
    if not done(x):
        raise ValueError(f"could not snap absmean {s} to fp16 {t}")
    out = torch.from_numpy(x).to(torch.bfloat16)
    if not np.array_equal(out.double().numpy(), x):
        raise ValueError("snapped weights are not bf16 values")
    return out.view(w.shape)


def hf_tensors(model):
    """HF names -> bf16 tensors of the model (linear weights scale-snapped)."""
    out = {"model.embed_tokens.weight": model.embed.weight.detach().to(torch.bfloat16),
           "model.norm.weight": model.norm.weight.detach().to(torch.bfloat16)}
    for i, blk in enumerate(model.layers):
        for ours, theirs in HF_LINEARS.items():
            w = getattr(blk, ours).weight.detach().to(torch.bfloat16)
            out[f"model.layers.{i}.{theirs}.weight"] = snap_absmean_to_fp16(w)
        for ours, theirs in HF_NORMS.items():
            out[f"model.layers.{i}.{theirs}.weight"] = getattr(blk, ours).weight.detach().to(torch.bfloat16)
    return out


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if t.dtype != torch.bfloat16:
            raise ValueError(f"tensor {name} is {t.dtype}; this writer stores bf16 only")
        raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """The bf16 tensors of a safetensors file (what write_safetensors writes)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "BF16":
            raise ValueError(f"{path}: tensor {name} is {e['dtype']}, expected BF16")
        b, end = e["data_offsets"]
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        if not (0 <= b <= end <= len(data)) or end - b != 2 * count:
            raise ValueError(f"{path}: tensor {name} has data_offsets {e['data_offsets']} for shape {e['shape']} "
                             f"in {len(data)} data bytes")
        a = np.frombuffer(data[b:end], dtype="<i2").copy()
        out[name] = torch.from_numpy(a).view(torch.bfloat16).reshape(e["shape"])
    return out


def write_hf_dir(path, model, cfg, tok, max_len, info):
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)

    def put(name, text):
        with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
            f.write(text)

    put("config.json", bpe.dumps(cfg))
    put("generation_config.json", bpe.dumps({"bos_token_id": tok.bos_id, "eos_token_id": [tok.eos_id, tok.eot_id],
                                             "do_sample": False}))
    put("tokenizer.json", bpe.dumps(tok.tokenizer_json()))
    put("tokenizer_config.json", bpe.dumps(bpe.tokenizer_config(tok, max_len)))
    put("training.json", bpe.dumps(info))
    write_safetensors(os.path.join(tmp, "model.safetensors"), hf_tensors(model), {"format": "pt"})
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
