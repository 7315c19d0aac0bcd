#!/usr/bin/python3
"""PyTorch's figures for the exported model, the golden file the test suite compares `bitnet` against.

    /usr/bin/python3 tools/train/golden.py models/bitnet-austen-5m-hf -o tests/trained/golden.json

Reads only the Hugging Face directory (config.json, model.safetensors, tokenizer.json), never the GGUF, and
evaluates it with its own code: ternary codes and scales as `bitnet convert` derives them from the bf16
master weights, activations rounded as the engine rounds them, the embedding and LM head as the F16 the
GGUF stores, K and V rounded to F16 as the engine's default cache keeps them. It writes
  - tokenization of the evaluation texts (count and sha256 of the ids),
  - perplexity by llama.cpp's method (windows of n_ctx tokens, first replaced by BOS, second half scored)
    on the held-out novel and WikiText-2 test, per window, and bits per byte,
  - greedy continuations of fixed prompts (ids, text, and the top-2 logit margin at every step).
"""

import argparse
import hashlib
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import export  # noqa: E402
from model import BitNet  # noqa: E402

TEXTS = ["austen/persuasion.txt", "wikitext-2/wiki.test.raw"]
PROMPTS = ["It is a truth universally acknowledged, that",
           "In the beginning God created",
           "Elizabeth looked at her sister and said,"]
N_GEN = 64


def tokenizer_from_json(path):
    """Rebuilds the BPE from tokenizer.json alone (merge i must create id 256 + i, as export writes it)."""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    vocab = j["model"]["vocab"]
    merges = []
    for i, m in enumerate(j["model"]["merges"]):
        a, b = m.split(" ") if isinstance(m, str) else m
        if vocab[a + b] != 256 + i:
            raise ValueError(f"merge {i} '{a} {b}' makes id {vocab[a + b]}, expected {256 + i}")
        merges.append((vocab[a], vocab[b]))
    tok = bpe.Tokenizer(merges)
    for t in j["added_tokens"]:
        if tok.special.get(t["content"]) != t["id"]:
            raise ValueError(f"special token {t['content']} has id {t['id']}, expected {tok.special.get(t['content'])}")
    return tok


def load_model(hf_dir):
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    model = BitNet(cfg)
    tensors = export.read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    state = {"embed.weight": tensors["model.embed_tokens.weight"].half().float(),  # GGUF token_embd is F16
             "norm.weight": tensors["model.norm.weight"].float()}
    for i in range(cfg["num_hidden_layers"]):
        for ours, theirs in {**export.HF_LINEARS, **export.HF_NORMS}.items():
            state[f"layers.{i}.{ours}.weight"] = tensors[f"model.layers.{i}.{theirs}.weight"].float()
    model.load_state_dict(state)
    # Codes and scales from the bf16 values (converted to float32 exactly, as the converter reads them).
    model.freeze_reference()
    model.eval()
    return cfg, model


def kv_f16(t):
    return t.half().float()


@torch.no_grad()
def perplexity(model, tok, ids, n_ctx, max_chunks=0, batch=8):
    n_chunks = len(ids) // n_ctx
    if max_chunks > 0:
        n_chunks = min(n_chunks, max_chunks)
    first = n_ctx // 2
    chunk_nll = []
    for c0 in range(0, n_chunks, batch):
        cs = range(c0, min(n_chunks, c0 + batch))
        w = torch.tensor([ids[c * n_ctx:(c + 1) * n_ctx] for c in cs], dtype=torch.long)
        tgt = w[:, first + 1:].clone()
        w[:, 0] = tok.bos_id
        logits = model(w, kv_round=kv_f16)[:, first:n_ctx - 1].double()
        lp = torch.log_softmax(logits, dim=-1).gather(-1, tgt[..., None])[..., 0]
        chunk_nll.extend((-lp.sum(dim=1)).tolist())
    scored = n_chunks * (n_ctx - 1 - first)
    nll = sum(chunk_nll)
    return {"n_ctx": n_ctx, "chunks": n_chunks, "tokens_scored": scored, "nll_sum": nll,
            "ppl": math.exp(nll / scored), "chunk_nll": chunk_nll}


@torch.no_grad()
def greedy(model, tok, prompt, n):
    """Greedy decoding as `bitnet run --temp 0`: stops before an end-of-generation token (not included)."""
    ids = tok.encode(prompt, bos=True)
    out, margins, stop = [], [], "length"
    for _ in range(n):
        logits = model(torch.tensor([ids + out]), kv_round=kv_f16)[0, -1]
        top = torch.topk(logits, 2)
        nxt = int(top.indices[0])
        margins.append(float(top.values[0] - top.values[1]))
        if nxt in (tok.eos_id, tok.eot_id):
            stop = "eog"
            break
        out.append(nxt)
    return {"prompt": prompt, "prompt_ids": ids, "ids": out, "stop": stop, "text": tok.decode(out),
            "margins": margins}


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("hf_dir")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-chunks", type=int, default=0, help="score at most this many windows per text (0: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shared = os.environ.get("BITNET_SHARED_DATA",
                            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data"))

    cfg, model = load_model(args.hf_dir)
    tok = tokenizer_from_json(os.path.join(args.hf_dir, "tokenizer.json"))
    out = {"hf_dir": os.path.basename(os.path.normpath(args.hf_dir)),
           "safetensors_sha256": sha256_file(os.path.join(args.hf_dir, "model.safetensors")),
           "method": "PyTorch reference (tools/train/golden.py): engine int8 activation rounding, F16 embedding "
                     "and KV", "texts": [], "greedy": []}
    for rel in TEXTS:
        with open(os.path.join(shared, "text", rel), "rb") as f:
            raw = f.read()
        ids = tok.encode(raw.decode("utf-8"), bos=True)
        r = perplexity(model, tok, ids, args.n_ctx, args.max_chunks)
        r.update({"file": rel, "bytes": len(raw), "tokens": len(ids),
                  "ids_sha256": hashlib.sha256(json.dumps(ids, separators=(",", ":")).encode()).hexdigest()})
        r["bits_per_byte"] = math.log2(r["ppl"]) * len(ids) / len(raw)
        print(f"{rel}: {len(ids)} tokens, PPL {r['ppl']:.4f} over {r['tokens_scored']} tokens, "
              f"{r['bits_per_byte']:.4f} bits/byte", flush=True)
        out["texts"].append(r)
    for p in PROMPTS:
        g = greedy(model, tok, p, N_GEN)
        print(f"{p!r} -> {g['text']!r} (smallest top-2 margin {min(g['margins']):.4f})", flush=True)
        out["greedy"].append(g)
    tmp = args.output + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
