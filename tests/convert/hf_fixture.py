"""Tiny Hugging Face BitNet checkpoints for the converter tests (and the 2B-4T-size benchmark), written
with NumPy only: config.json, tokenizer.json + tokenizer_config.json, and model.safetensors (or shards
with model.safetensors.index.json) in one of the forms of BITNET_FORMATS.md §5:

  master   bf16 latent weights [out, in] (microsoft/bitnet-b1.58-2B-4T-bf16; quantization_mode online)
  packed   uint8 [out/4, in] + weight_scale (microsoft/bitnet-b1.58-2B-4T; offline, AutoBitLinear)
  bitlinear  packed, but weight_scale = 1 / absmean and linear_class "bitlinear" (transformers' BitLinear)
  int8     int8 [out, in] codes + weight_scale

The packed forms are derived from the master weights with the absmean rule, so one seed gives the same
ternary model in every form. Norm gains follow the real checkpoint's profile (§8), master weights have
absmean ~1.2 like the real ones (nice=True: exactly 1 + j/128, see nice_master).
"""
import json
import os
import shutil
import struct

import numpy as np

LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
# The chat template of microsoft/bitnet-b1.58-2B-4T's tokenizer_config.json (BITNET_FORMATS.md §6, template 1).
HF_CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] | trim + "
                    "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}")


# ------------------------------------------------------------------ numbers --
def to_bf16(x):
    """float array -> uint16 bf16 bits, round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def absmean_ternarize(w):
    """w float -> (codes int8, s float64): s = max(mean|w|, 1e-5), codes = clip(rint(w / s), -1, 1)."""
    w = w.astype(np.float64)
    s = max(np.abs(w).mean(), 1e-5)
    return np.clip(np.rint(w / s), -1, 1).astype(np.int8), s


def pack_ternary(codes):
    """codes int8 [out, in] -> uint8 [out/4, in]: row i*(out/4)+r goes to bits 2i..2i+1 of row r (code+1)."""
    out = codes.shape[0]
    q = out // 4
    u = (codes.astype(np.int16) + 1).astype(np.uint8)
    packed = np.zeros((q,) + codes.shape[1:], np.uint8)
    for i in range(4):
        packed |= u[i * q:(i + 1) * q] << (2 * i)
    return packed


# -------------------------------------------------------------- safetensors --
DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.uint8): "U8",
          np.dtype(np.int8): "I8", "BF16": "BF16"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, array, dtype_name or None); bf16 arrays are uint16 with dtype_name 'BF16'.
    An entry may also be (name, shape, dtype_name, producer) with producer() returning the array, so big
    files are written one tensor at a time."""
    header, offset, items = {}, 0, []
    for t in tensors:
        if len(t) == 4:
            name, shape, dt, producer = t
            itemsize = {"BF16": 2, "F16": 2, "F32": 4, "U8": 1, "I8": 1}[dt]
        else:
            name, arr, dt = t
            dt = dt or DTYPES[arr.dtype]
            shape, itemsize = arr.shape, arr.dtype.itemsize
            producer = (lambda a: lambda: a)(arr)
        n = int(np.prod(shape, dtype=np.int64)) * itemsize
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [offset, offset + n]}
        items.append((n, producer))
        offset += n
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for n, producer in items:
            data = np.ascontiguousarray(producer()).tobytes()
            assert len(data) == n
            f.write(data)


def read_safetensors(path):
    """{name: (dtype_name, shape, raw bytes as np.uint8)}."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[name] = (v["dtype"], tuple(v["shape"]), np.frombuffer(buf, np.uint8, e - b, base + b))
    return out


def st_array(entry):
    """(dtype, shape, raw) -> numpy array of its values (bf16 as float32)."""
    dt, shape, raw = entry
    if dt == "BF16":
        return from_bf16(raw.view(np.uint16)).reshape(shape)
    np_dt = {"F32": np.float32, "F16": np.float16, "U8": np.uint8, "I8": np.int8}[dt]
    return raw.view(np_dt).reshape(shape)


def dump_json(obj, path, **kw):
    with open(path, "w") as f:
        json.dump(obj, f, **kw)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def load_checkpoint(hf_dir):
    """All tensors of a checkpoint folder (single file or index + shards)."""
    idx = os.path.join(hf_dir, "model.safetensors.index.json")
    files = (sorted(set(load_json(idx)["weight_map"].values())) if os.path.exists(idx)
             else ["model.safetensors"])
    out = {}
    for f in files:
        out.update(read_safetensors(os.path.join(hf_dir, f)))
    return out


# ---------------------------------------------------------------- tokenizer --
def bytes_to_unicode():
    """GPT-2's byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


def tiny_tokenizer():
    """(tokenizer.json dict, tokenizer_config.json dict): byte-level BPE, 256 bytes + a few merges + specials."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s")]:
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
    added = [{"id": len(vocab) + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": merges},
    }
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": HF_CHAT_TEMPLATE}
    return tok, cfg, len(vocab) + len(SPECIALS)


# --------------------------------------------------------------- checkpoint --
def nice_master(rng, shape):
    """bf16 master weights whose absmean is exactly 1 + j/128 (j odd) and whose values are multiples of 1/16:
    every product the engine and the reference form with such a scale is exact in float32, so their logits
    can be compared at 1e-6 instead of within int8-rounding flips (an arbitrary float32 scale makes both
    round a few activations on opposite sides of .5). j odd keeps every W/s off the .5 ties."""
    n = int(np.prod(shape))
    k = np.clip(np.rint(np.abs(rng.normal(0, 1.5, n)) * 16), 0, 200).astype(np.int64)
    target = n * (128 + 2 * int(rng.integers(0, 64)) + 1) // 8  # sum of |16 W| = n * 16 * s, s = (128 + j) / 128
    assert n % 8 == 0
    while True:
        diff = target - int(k.sum())
        if diff == 0:
            break
        step = 1 if diff > 0 else -1
        ok = np.flatnonzero((k < 255) if step > 0 else (k > 0))
        idx = rng.choice(ok, size=min(abs(diff), len(ok)), replace=False)
        k[idx] += step
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return to_bf16((sign * k / 16.0).reshape(shape))


def norm_gain(rng, kind, layer, n_layers, n):
    f = layer / max(1, n_layers - 1)
    lo, hi = {"input_layernorm": (0.012, 0.028), "post_attention_layernorm": (1.1, 1.6), "norm": (0.09, 0.16)}.get(
        kind, (None, None))
    if kind == "attn_sub_norm":
        lo, hi = (0.013, 0.017) if layer == 0 else (0.2 * (1 + 9 * f), 0.4 * (1 + 9 * f))
    if kind == "ffn_sub_norm":
        c = 0.78 * (8.2 / 0.78) ** f
        lo, hi = c / 2, 2 * c
    return rng.uniform(lo, hi, n).astype(np.float32)


def make_checkpoint(out_dir, form="master", *, dim=256, hidden=768, layers=2, heads=4, kv_heads=1, vocab="tiny",
                    vocab_size=None, shards=1, seed=1, hidden_act="relu2", arch="BitNetForCausalLM", scale_dtype="BF16",
                    shared=None, tie=True, lm_head=False, nice=True, overrides=None):
    """Writes the folder; returns the config dict. vocab: 'tiny' or 'llama3' (tokenizer files copied from
    SHARED/tokenizer/llama3, with the 2B-4T chat template). overrides: {tensor name: array or None (drop)}."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    if vocab == "llama3":
        src = os.path.join(shared, "tokenizer", "llama3")
        shutil.copy(os.path.join(src, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))
        tcfg = load_json(os.path.join(src, "tokenizer_config.json"))
        tcfg["chat_template"] = HF_CHAT_TEMPLATE
        dump_json(tcfg, os.path.join(out_dir, "tokenizer_config.json"))
        n_tokens = 128256
    else:
        tok, tcfg, n_tokens = tiny_tokenizer()
        dump_json(tok, os.path.join(out_dir, "tokenizer.json"))
        dump_json(tcfg, os.path.join(out_dir, "tokenizer_config.json"))
    V = vocab_size or (n_tokens if vocab == "llama3" else n_tokens + 11)  # tiny: padded rows too
    hd = dim // heads
    qc = {"quant_method": "bitnet", "linear_class": "bitlinear" if form == "bitlinear" else "autobitlinear",
          "quantization_mode": "online" if form == "master" else "offline"}
    config = {"architectures": [arch], "model_type": "bitnet", "hidden_size": dim, "intermediate_size": hidden,
              "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
              "vocab_size": V, "max_position_embeddings": 4096, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
              "hidden_act": hidden_act, "tie_word_embeddings": tie, "bos_token_id": 128000, "eos_token_id": 128001,
              "torch_dtype": "bfloat16", "quantization_config": qc}
    dump_json(config, os.path.join(out_dir, "config.json"), indent=2)

    tensors = [("model.embed_tokens.weight", to_bf16(rng.normal(0, 0.35, (V, dim))), "BF16")]
    if lm_head:
        tensors.append(("lm_head.weight", to_bf16(rng.normal(0, 0.35, (V, dim))), "BF16"))
    shapes = {"self_attn.q_proj": (heads * hd, dim), "self_attn.k_proj": (kv_heads * hd, dim),
              "self_attn.v_proj": (kv_heads * hd, dim), "self_attn.o_proj": (dim, heads * hd),
              "mlp.gate_proj": (hidden, dim), "mlp.up_proj": (hidden, dim), "mlp.down_proj": (dim, hidden)}
    for l in range(layers):
        p = f"model.layers.{l}."
        for kind, n in (("input_layernorm", dim), ("post_attention_layernorm", dim)):
            tensors.append((p + kind + ".weight", to_bf16(norm_gain(rng, kind, l, layers, n)), "BF16"))
        tensors.append((p + "self_attn.attn_sub_norm.weight", to_bf16(norm_gain(rng, "attn_sub_norm", l, layers,
                                                                                  heads * hd)), "BF16"))
        tensors.append((p + "mlp.ffn_sub_norm.weight", to_bf16(norm_gain(rng, "ffn_sub_norm", l, layers, hidden)),
                        "BF16"))
        for lin in LINEARS:
            master = nice_master(rng, shapes[lin]) if nice else to_bf16(rng.normal(0, 1.5, shapes[lin]))
            name = p + lin + ".weight"
            if form == "master":
                tensors.append((name, master, "BF16"))
                continue
            codes, s = absmean_ternarize(from_bf16(master))
            scale = 1.0 / s if form == "bitlinear" else s
            sc = to_bf16(np.array([scale])) if scale_dtype == "BF16" else np.array([scale], np.float32)
            tensors.append((name, codes if form == "int8" else pack_ternary(codes), None))
            tensors.append((name[:-len(".weight")] + ".weight_scale", sc, scale_dtype))
    tensors.append(("model.norm.weight", to_bf16(norm_gain(rng, "norm", 0, layers, dim)), "BF16"))
    for name, arr in (overrides or {}).items():
        tensors = [t for t in tensors if t[0] != name]
        if arr is not None:
            tensors.append((name, arr, "BF16" if arr.dtype == np.uint16 else None))

    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, {"format": "pt"})
    else:
        weight_map = {}
        per = (len(tensors) + shards - 1) // shards
        for i in range(shards):
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            part = tensors[i * per:(i + 1) * per]
            write_safetensors(os.path.join(out_dir, fname), part, {"format": "pt"})
            weight_map.update({t[0]: fname for t in part})
        dump_json({"metadata": {}, "weight_map": weight_map}, os.path.join(out_dir, "model.safetensors.index.json"),
                  indent=2)
    return config
