"""A Hugging Face checkpoint folder seen through the interface of tests/reference/gguf_min.GGUFFile, so that
the independent NumPy forward pass (tests/reference/bitnet_ref.forward) runs directly from the safetensors.

Nothing here shares code with the C++ converter: tensor names are mapped with the table of
BITNET_FORMATS.md §5.4, master weights are ternarised with NumPy (absmean, §5.3), packed weights unpacked
with the rule of §5.2 and scaled by weight_scale (AutoBitLinear multiplies, BitLinear divides).

`scale`: how the converted file stores the per-tensor scale: "f32" (I2_S, F32), "f16" (TQ1_0, TQ2_0, F16:
rounded to the nearest fp16). `embd`: the embedding type of the converted file ("f16": values rounded
through fp16, "f32": exact).
"""
import os

import numpy as np

from hf_fixture import load_checkpoint, load_json, st_array

LAYER_MAP = {"self_attn.inner_attn_ln": "attn_sub_norm", "mlp.ffn_layernorm": "ffn_sub_norm",  # 1bitLLM spellings
             "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "self_attn.attn_sub_norm": "attn_sub_norm",
             "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "mlp.ffn_sub_norm": "ffn_sub_norm"}
LINEAR_KINDS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


class _Info:
    def __init__(self, np_shape):
        self.ne = tuple(reversed(np_shape))


class _Ternary:
    def __init__(self, codes, scale):
        self.codes, self.scale, self.block_d, self.type_name = codes, scale, None, "I2_S"

    def dense(self):
        return self.codes.astype(np.float64) * self.scale


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf.startswith("model.layers."):
        parts = hf.split(".")
        layer, rest = parts[2], ".".join(parts[3:-1])
        if rest in LAYER_MAP and parts[-1] == "weight":
            return f"blk.{layer}.{LAYER_MAP[rest]}.{parts[-1]}"
    return None


class HFModel:
    rope_neox = True  # HF's rotate_half on q/k rows as stored, whatever the arch (bitnet_ref.hparams)

    def __init__(self, hf_dir, arch, scale="f32", embd="f16"):
        cfg = load_json(os.path.join(hf_dir, "config.json"))
        raw = load_checkpoint(hf_dir)
        if cfg.get("tie_word_embeddings", True):
            raw.pop("lm_head.weight", None)
        self.arch = arch
        A = arch + "."
        self.metadata = {A + "embedding_length": cfg["hidden_size"], A + "block_count": cfg["num_hidden_layers"],
                         A + "attention.head_count": cfg["num_attention_heads"],
                         A + "attention.head_count_kv": cfg["num_key_value_heads"],
                         A + "attention.layer_norm_rms_epsilon": np.float32(cfg["rms_norm_eps"]),
                         A + "rope.freq_base": np.float32(cfg["rope_theta"])}
        if arch == "bitnet":
            self.metadata[A + "hidden_activation"] = cfg["hidden_act"]
        linear_class = cfg.get("quantization_config", {}).get("linear_class", "bitlinear")
        self._values, self.tensors, self.scales = {}, {}, {}
        for hf, entry in raw.items():
            g = gguf_name(hf)
            if g is None:
                continue
            kind = g.split(".")[-2]
            if kind in LINEAR_KINDS:
                dt = entry[0]
                if dt in ("U8", "I8"):
                    v = st_array(entry)
                    if dt == "U8":  # [out/4, in] -> [out, in]
                        codes = np.concatenate([((v >> (2 * i)) & 3).astype(np.int8) - 1 for i in range(4)])
                    else:
                        codes = v.astype(np.int8)
                    ws = float(st_array(raw[hf[:-len(".weight")] + ".weight_scale"]).reshape(-1)[0])
                    s = ws if linear_class == "autobitlinear" else 1.0 / ws
                else:
                    w = st_array(entry).astype(np.float64)
                    s = max(np.abs(w).mean(), 1e-5)
                    codes = np.clip(np.rint(w / s), -1, 1).astype(np.int8)
                s = float(np.float32(s)) if scale == "f32" else float(np.float16(np.float32(s)))
                self._values[g] = _Ternary(codes, s)
                self.scales[g] = s
                shape = codes.shape
            else:
                v = st_array(entry).astype(np.float32)
                if kind in ("token_embd", "output") and embd == "f16":
                    v = v.astype(np.float16).astype(np.float32)
                self._values[g] = v.astype(np.float64)
                shape = v.shape
            self.tensors[g] = _Info(shape)

    # ---- the part of GGUFFile that bitnet_ref.forward uses ----
    def info(self, name):
        return self.tensors[name]

    def is_ternary(self, name):
        return isinstance(self._values[name], _Ternary)

    def ternary(self, name):
        return self._values[name]

    def dequant(self, name, rows=None):
        v = self._values[name]
        v = v.dense() if isinstance(v, _Ternary) else v
        return v if rows is None else v[rows[0]:rows[1]]
