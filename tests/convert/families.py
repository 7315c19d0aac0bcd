"""Tiny Hugging Face folders laid out like the ternary checkpoints people run, at small dimensions (NumPy
only). Each reproduces its family's config.json keys, tensor names, dtypes, packing and tokenizer files as
published (sources: the repositories' config.json and file lists, transformers' integrations/bitnet.py,
bitnet.cpp's utils/convert-hf-to-gguf-bitnet.py; docs/models.md gives them with their sources):

  falcon3    tiiuae/Falcon3-{1B,3B,7B,10B}-{Base,Instruct}-1.58bit: LlamaForCausalLM, head_dim key, rope_theta
             1000042, rms_norm_eps 1e-6, quantization_config {modules_to_not_convert: [lm_head], quant_method:
             bitnet} (no linear_class: transformers' BitLinear, which divides by weight_scale = 1 / absmean),
             linears packed uint8 [out/4, in] + bf16 weight_scale [1], untied bf16 lm_head, byte-level BPE with
             Falcon's >>TITLE<<... specials below <|endoftext|> (id 11).
  llama3_8b  HF1BitLLM/Llama3-8B-1.58-100B-tokens: the same form with the LLaMA-3 vocabulary, GQA, and
             "quantization_config" written twice in config.json (JSON readers keep the last one).
  bitnet1    1bitLLM/bitnet_b1_58-{large,3B}: BitnetForCausalLM (model_type llama), fp16 latent weights
             (ternarised at run time), sub-norms named self_attn.inner_attn_ln and mlp.ffn_layernorm, tied
             embedding, SiLU, LLaMA-2's SentencePiece tokenizer.model + added_tokens.json (<pad>, </line>).
"""
import json
import os
import shutil
import struct

import numpy as np

import hf_fixture as hf

LINEAR_SHAPES = lambda dim, hidden, heads, kv, hd: {  # noqa: E731
    "self_attn.q_proj": (heads * hd, dim), "self_attn.k_proj": (kv * hd, dim), "self_attn.v_proj": (kv * hd, dim),
    "self_attn.o_proj": (dim, heads * hd), "mlp.gate_proj": (hidden, dim), "mlp.up_proj": (hidden, dim),
    "mlp.down_proj": (dim, hidden)}

FALCON_SPECIALS = [">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<", ">>ANSWER<<",
                   ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<", ">>SUFFIX<<", ">>MIDDLE<<", "<|endoftext|>"]


def falcon_tokenizer():
    """Byte-level BPE laid out as Falcon's: specials at ids 0-11, then bytes and merges, <|pad|> last."""
    b2u = hf.bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(FALCON_SPECIALS)}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s"),
                 ("Ġa", "n"), ("Ġan", "d")]:
        merges.append(f"{a} {b}")
        vocab[a + b] = len(vocab)
    vocab["<|pad|>"] = len(vocab)
    added = [{"id": vocab[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for s in FALCON_SPECIALS + ["<|pad|>"]]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
               {"type": "Split", "pattern": {"Regex": hf.LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
               {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
           "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                     "merges": merges}}
    cfg = {"add_bos_token": False, "add_eos_token": False, "eos_token": "<|endoftext|>", "pad_token": "<|pad|>",
           "model_max_length": 8192, "tokenizer_class": "PreTrainedTokenizerFast",
           "chat_template": "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + "
                            "'\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"}
    return tok, cfg, len(vocab)


# ------------------------------------------------------------ SentencePiece --
def _varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(number, wire, payload):
    key = _varint((number << 3) | wire)
    if wire == 0:
        return key + _varint(payload)
    if wire == 2:
        return key + _varint(len(payload)) + payload
    if wire == 5:
        return key + struct.pack("<f", payload)
    raise ValueError(wire)


SPM_WORDS = ["▁the", "▁and", "▁of", "▁to", "▁a", "▁in", "▁was", "▁her", "▁she", "▁not", "▁be", "▁that", "▁it",
             "▁Emma", "▁Mr", "▁Elton", "▁Knightley"]


def spm_model():
    """(tokenizer.model bytes, pieces): a BPE SentencePiece model in LLaMA-2's configuration (identity
    normalizer, dummy prefix, whitespace kept, byte fallback, unk 0 / bos 1 / eos 2, no pad). Pieces: the
    three specials, 256 byte pieces, single characters, then merged pieces with decreasing scores, each
    reachable from its halves as SentencePiece's BPE requires."""
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    merged = []
    for w in SPM_WORDS:
        for n in range(2, len(w) + 1):
            if w[:n] not in merged:
                merged.append(w[:n])
    chars = sorted({c for w in SPM_WORDS for c in w} | set("abcdefghijklmnopqrstuvwxyz,.;!?'\"-"))
    score = -1.0
    for p in merged:
        pieces.append((p, score, 1))
        score -= 1.0
    for c in chars:
        pieces.append((c, score, 1))
        score -= 1.0
    body = b"".join(_field(1, 2, _field(1, 2, p.encode()) + _field(2, 5, s) + _field(3, 0, t)) for p, s, t in pieces)
    trainer = (_field(3, 0, 2) + _field(4, 0, len(pieces)) + _field(35, 0, 1) + _field(40, 0, 0) + _field(41, 0, 1) +
               _field(42, 0, 2) + _field(43, 0, -1))
    normalizer = _field(1, 2, b"identity") + _field(3, 0, 1) + _field(4, 0, 0) + _field(5, 0, 1)
    return body + _field(2, 2, trainer) + _field(3, 2, normalizer), pieces


# --------------------------------------------------------------- checkpoints --
def _linears(rng, tensors, prefix, shapes, form, scale_dtype="BF16"):
    for lin, shape in shapes.items():
        master = hf.nice_master(rng, shape)
        name = prefix + lin + ".weight"
        if form == "fp16":  # latent weights (1bitLLM); nice values are exact in fp16
            tensors.append((name, hf.from_bf16(master).astype(np.float16), None))
            continue
        codes, _ = hf.absmean_ternarize(hf.from_bf16(master))
        tensors.append((name, hf.pack_ternary(codes), None))
        # BitLinear: weight_scale = 1 / absmean, divided by. The absmean is a power of two (0.5, 2 or 4) so that
        # 1 / weight_scale is exact and the engine's float32 products equal the reference's float64 ones (logits
        # then agree to ~1e-6); a scale of 1 would hide the direction.
        sc = 1.0 / 2.0 ** float(rng.choice([-1, 1, 2]))
        tensors.append((name[:-len(".weight")] + ".weight_scale",
                        hf.to_bf16(np.array([sc])) if scale_dtype == "BF16" else np.array([sc], np.float32), scale_dtype))


def _llama_gain(rng, n, lo=0.6, hi=1.4):
    return hf.to_bf16(rng.uniform(lo, hi, n).astype(np.float32))


def make_falcon3(out_dir, *, dim=256, hidden=512, layers=2, heads=2, kv_heads=1, seed=1, vocab="falcon",
                 shared=None, duplicate_quant_config=False, scale_dtype="BF16"):
    """Falcon3-1.58bit form (vocab 'falcon'), or Llama3-8B-1.58 form (vocab 'llama3', duplicate_quant_config)."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    if vocab == "llama3":
        src = os.path.join(shared, "tokenizer", "llama3")
        shutil.copy(os.path.join(src, "tokenizer.json"), os.path.join(out_dir, "tokenizer.json"))
        shutil.copy(os.path.join(src, "tokenizer_config.json"), os.path.join(out_dir, "tokenizer_config.json"))
        V, bos, eos, theta, eps = 128256, 128000, 128001, 500000.0, 1e-5
    else:
        tok, tcfg, V = falcon_tokenizer()
        hf.dump_json(tok, os.path.join(out_dir, "tokenizer.json"))
        hf.dump_json(tcfg, os.path.join(out_dir, "tokenizer_config.json"))
        V, bos, eos, theta, eps = V + 6, 11, 11, 1000042.0, 1e-6  # padded rows too
    hd = dim // heads
    config = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
              "bos_token_id": bos, "eos_token_id": eos, "head_dim": hd, "hidden_act": "silu", "hidden_size": dim,
              "initializer_range": 0.02, "intermediate_size": hidden, "is_bitnet_config": True,
              "max_position_embeddings": 8192, "mlp_bias": False, "model_type": "llama", "num_attention_heads": heads,
              "num_hidden_layers": layers, "num_key_value_heads": kv_heads, "pretraining_tp": 1,
              "rms_norm_eps": eps, "rope_scaling": None, "rope_theta": theta, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16", "transformers_version": "4.46.1", "use_cache": True, "vocab_size": V,
              "quantization_config": {"modules_to_not_convert": ["lm_head"], "quant_method": "bitnet"}}
    text = json.dumps(config, indent=2)
    if duplicate_quant_config:  # a first, different value that JSON readers must drop for the last one
        text = text.replace('"architectures"', '"quantization_config": {"quant_method": "bitnet", '
                                                '"linear_class": "autobitlinear"},\n  "architectures"', 1)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        f.write(text)

    tensors = [("model.embed_tokens.weight", hf.to_bf16(rng.normal(0, 0.02 * 16, (V, dim))), "BF16"),
               ("lm_head.weight", hf.to_bf16(rng.normal(0, 0.02 * 16, (V, dim))), "BF16")]
    shapes = LINEAR_SHAPES(dim, hidden, heads, kv_heads, hd)
    for l in range(layers):
        p = f"model.layers.{l}."
        tensors.append((p + "input_layernorm.weight", _llama_gain(rng, dim), "BF16"))
        tensors.append((p + "post_attention_layernorm.weight", _llama_gain(rng, dim), "BF16"))
        _linears(rng, tensors, p, shapes, "packed", scale_dtype)
    tensors.append(("model.norm.weight", _llama_gain(rng, dim), "BF16"))
    hf.write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, {"format": "pt"})
    return config


def make_llama3_8b(out_dir, *, shared, **kw):
    kw.setdefault("heads", 4)
    return make_falcon3(out_dir, vocab="llama3", shared=shared, duplicate_quant_config=True, **kw)


def make_bitnet1(out_dir, *, dim=256, hidden=512, layers=2, heads=4, seed=1):
    """1bitLLM/bitnet_b1_58 form."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    model, pieces = spm_model()
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(model)
    n = len(pieces)
    hf.dump_json({"<pad>": n, "</line>": n + 1}, os.path.join(out_dir, "added_tokens.json"))
    decoder = {str(i): {"content": p, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                        "special": True} for i, (p, _, t) in enumerate(pieces) if t in (2, 3)}
    decoder[str(n)] = {"content": "<pad>", "lstrip": False, "normalized": False, "rstrip": False,
                       "single_word": False, "special": True}
    decoder[str(n + 1)] = {"content": "</line>", "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": False}
    hf.dump_json({"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder, "bos_token": "<s>",
                  "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "legacy": False,
                  "tokenizer_class": "LlamaTokenizer"}, os.path.join(out_dir, "tokenizer_config.json"))
    V = n + 2
    config = {"architectures": ["BitnetForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
              "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": dim,
              "initializer_range": 0.02, "input_bits": 8, "intermediate_size": hidden, "max_position_embeddings": 2048,
              "model_type": "llama", "num_attention_heads": heads, "num_hidden_layers": layers,
              "num_key_value_heads": heads, "pad_token_id": n, "pretraining_tp": 1, "rms_norm_eps": 1e-5,
              "rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "float16",
              "transformers_version": "4.39.0", "use_cache": True, "vocab_size": V, "weight_bits": 1}
    hf.dump_json(config, os.path.join(out_dir, "config.json"), indent=2)
    tensors = [("model.embed_tokens.weight", rng.normal(0, 0.35, (V, dim)).astype(np.float16), None)]
    shapes = LINEAR_SHAPES(dim, hidden, heads, heads, dim // heads)
    for l in range(layers):
        p = f"model.layers.{l}."
        f16 = lambda x: x.astype(np.float16)  # noqa: E731
        tensors.append((p + "input_layernorm.weight", f16(hf.norm_gain(rng, "input_layernorm", l, layers, dim)), None))
        tensors.append((p + "post_attention_layernorm.weight",
                        f16(hf.norm_gain(rng, "post_attention_layernorm", l, layers, dim)), None))
        tensors.append((p + "self_attn.inner_attn_ln.weight", f16(hf.norm_gain(rng, "attn_sub_norm", l, layers, dim)),
                        None))
        tensors.append((p + "mlp.ffn_layernorm.weight", f16(hf.norm_gain(rng, "ffn_sub_norm", l, layers, hidden)), None))
        _linears(rng, tensors, p, shapes, "fp16")
    tensors.append(("model.norm.weight", f16(hf.norm_gain(rng, "norm", 0, layers, dim)), None))
    hf.write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, {"format": "pt"})
    return config
