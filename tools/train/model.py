"""BitNet b1.58 in PyTorch: the 2B-4T graph (BITNET_FORMATS.md section 4) at small size.

    x = embed[tok]
    per layer:  h = RMSNorm(x, attn_norm);  q, k, v = BitLinear(h);  q, k = RoPE_NEOX(q, k)
                a = RMSNorm(Attention(q, k, v), attn_sub_norm);  x = x + BitLinear_o(a)
                h = RMSNorm(x, ffn_norm);  f = RMSNorm(relu(BitLinear_gate(h))^2 * BitLinear_up(h), ffn_sub_norm)
                x = x + BitLinear_down(f)
    logits = RMSNorm(x, output_norm) @ embed^T          (tied head, not quantized)

BitLinear quantizes its weight to {-s, 0, +s} with s = mean|W| (absmean) and its input per token to int8
with absmax scaling. In training both use straight-through estimators (the forward value is quantized,
the gradient passes as if it were not). `Reference` mode instead reproduces the engine: codes and scales
exactly as `bitnet convert` derives them from the exported master weights, activations rounded as the
engine's kernels round them (float32 scale 127/amax with amax in double, round half to even).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def absmean_ternary(w):
    """(codes in {-1, 0, 1}, scale) as `bitnet convert` computes them for float master weights:
    s = max(mean|W| in double, 1e-5); code = +-1 where |w| > s/2 (ties round to 0, as half-to-even does)."""
    s = max(w.double().abs().mean().item(), 1e-5)
    wd = w.double()
    codes = (wd > 0.5 * s).to(torch.int8) - (wd < -0.5 * s).to(torch.int8)
    return codes, s


def act_quant_ste(x):
    """Per-token int8 absmax fake quantization with a straight-through gradient."""
    s = 127.0 / x.detach().abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    q = (x * s).round().clamp(-128, 127) / s
    return x + (q - x).detach()


def weight_quant_ste(w):
    s = w.detach().abs().mean().clamp(min=1e-5)
    q = (w / s).round().clamp(-1, 1) * s
    return w + (q - w).detach()


def act_quant_engine(x):
    """The engine's rounding (kernels.h quantize_row_i8): amax in double, s = float32(127 / amax),
    q = round_half_even(x * s) in float32. Returns (q as float, s)."""
    amax = x.double().abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    s = (127.0 / amax).float()
    q = torch.round(x.float() * s).clamp(-128, 127)
    return q, s


class BitLinear(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.reference = None  # (codes as float32, scale) once frozen for reference evaluation

    def freeze_reference(self):
        codes, s = absmean_ternary(self.weight.data)
        self.reference = (codes.float(), torch.tensor(s, dtype=torch.float64).float())  # stored as float32

    def forward(self, x):
        if self.reference is None:
            return F.linear(act_quant_ste(x), weight_quant_ste(self.weight))
        codes, s = self.reference
        q, xs = act_quant_engine(x)
        # The integer dot products are exact in float32 (|sum| <= 128 * K < 2^24); then, as the engine's
        # kernels do, y = float(dot) / s_x * s_w with two float32 roundings.
        dot = F.linear(q, codes)
        return dot / xs * s


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.reference = False

    def forward(self, x):
        if not self.reference:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight
        # The engine (kernels rmsnorm): sum of squares in double, mean rounded to float, 1 / sqrt(mean + eps)
        # in float, then x * scale * g.
        mean = x.double().pow(2).mean(-1, keepdim=True).float()
        scale = 1.0 / torch.sqrt(mean + torch.tensor(self.eps, dtype=torch.float32))
        return x * scale * self.weight


def rope_tables(head_dim, n_pos, theta):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim // 2, dtype=torch.float64) * 2.0 / head_dim))
    ang = torch.arange(n_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cos(ang).float(), torch.sin(ang).float()


def rope_neox(x, cos, sin):
    """Rotate-half RoPE: the pair (x_i, x_{i+d/2}) turns by pos * theta^(-2i/d). x: [B, H, T, d]."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["hidden_size"], c["hidden_size"] // c["num_attention_heads"]
        self.n_heads, self.n_kv, self.hd = c["num_attention_heads"], c["num_key_value_heads"], hd
        eps = c["rms_norm_eps"]
        self.attn_norm = RMSNorm(d, eps)
        self.q = BitLinear(d, self.n_heads * hd)
        self.k = BitLinear(d, self.n_kv * hd)
        self.v = BitLinear(d, self.n_kv * hd)
        self.attn_sub_norm = RMSNorm(self.n_heads * hd, eps)
        self.o = BitLinear(self.n_heads * hd, d)
        self.ffn_norm = RMSNorm(d, eps)
        self.gate = BitLinear(d, c["intermediate_size"])
        self.up = BitLinear(d, c["intermediate_size"])
        self.ffn_sub_norm = RMSNorm(c["intermediate_size"], eps)
        self.down = BitLinear(c["intermediate_size"], d)

    def forward(self, x, cos, sin, mask, kv_round=None, attn=None):
        """attn: a list to append this layer's attention probabilities [B, H, T, T] to (copy_tune.py)."""
        B, T, _ = x.shape  # x: [B, T, d]
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, self.n_heads, self.hd).transpose(1, 2)  # [B, H, T, hd]
        k = self.k(h).view(B, T, self.n_kv, self.hd).transpose(1, 2)     # [B, H_kv, T, hd]
        v = self.v(h).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q, k = rope_neox(q, cos, sin), rope_neox(k, cos, sin)
        if kv_round is not None:  # the engine's F16 KV cache
            k, v = kv_round(k), kv_round(v)
        rep = self.n_heads // self.n_kv  # GQA: query head h reads KV head h // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(self.hd)) + mask, dim=-1)
        if attn is not None:
            attn.append(att)
        a = att @ v
        a = a.transpose(1, 2).reshape(B, T, self.n_heads * self.hd)
        x = x + self.o(self.attn_sub_norm(a))
        h = self.ffn_norm(x)
        f = torch.relu(self.gate(h)).square() * self.up(h)
        return x + self.down(self.ffn_sub_norm(f))


class BitNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        hd = c["hidden_size"] // c["num_attention_heads"]
        cos, sin = rope_tables(hd, c["max_position_embeddings"], c["rope_theta"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def init_weights(self, generator):
        for name, p in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(p)
            else:
                with torch.no_grad():
                    p.normal_(0.0, 0.02, generator=generator)

    def linears(self):
        return [m for m in self.modules() if isinstance(m, BitLinear)]

    def freeze_reference(self):
        """Reference mode (evaluation only): BitLinear and RMSNorm round as the engine does."""
        for m in self.linears():
            m.freeze_reference()
        for m in self.modules():
            if isinstance(m, RMSNorm):
                m.reference = True

    def forward(self, tokens, kv_round=None, attn=None):
        """tokens: [B, T] from position 0 (no cache). Returns logits [B, T, vocab]; with a list `attn`, appends
        every layer's attention probabilities to it."""
        B, T = tokens.shape
        if T > self.cos.shape[0]:
            raise ValueError(f"{T} tokens exceed the context of {self.cos.shape[0]}")
        x = self.embed(tokens)
        cos, sin = self.cos[:T], self.sin[:T]
        mask = torch.full((T, T), float("-inf"), device=tokens.device).triu(1)
        for layer in self.layers:
            x = layer(x, cos, sin, mask, kv_round, attn)
        return F.linear(self.norm(x), self.embed.weight)  # tied head
