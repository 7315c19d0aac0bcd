#!/usr/bin/python3
"""Trains the project's default model: BitNet b1.58 (the 2B-4T graph) at small size, quantization-aware,
on public-domain text, then exports a Hugging Face directory that `bitnet convert` turns into the GGUF.

    /usr/bin/python3 tools/train/train.py --out build/train            # trains (resumes if stopped)
    /usr/bin/python3 tools/train/train.py --out build/train --export-only

Deterministic from --seed at a fixed thread count: batches are drawn from a generator seeded with
(seed, step), so a resumed run draws what the uninterrupted run would have. Debian's python3-torch and
python3-numpy (apt); install libopenblas0-pthread too (the reference BLAS is ~10x slower).
"""

import argparse
import hashlib
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpe  # noqa: E402
import export  # noqa: E402
from model import BitNet  # noqa: E402

# Data (BITNET_SHARED_DATA/text): every Austen novel but the held-out one, and the King James Bible.
# Persuasion is held out entirely for evaluation; WikiText-2 test is never trained on.
TRAIN_FILES = ["austen/emma.txt", "austen/mansfieldpark.txt", "austen/northangerabbey.txt",
               "austen/prideprejudice.txt", "austen/sensesensibility.txt", "kjv/kjv_plain.txt"]
HELDOUT_FILE = "austen/persuasion.txt"
WIKI_FILE = "wikitext-2/wiki.test.raw"

DEFAULTS = dict(
    seed=1234,
    vocab_size=4096,          # 256 bytes + merges + 5 special tokens
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=5,
    num_attention_heads=4,    # head_dim 64
    num_key_value_heads=2,    # GQA group 2
    seq_len=256,              # steps before long_from: 16 windows of 256 tokens
    batch=16,
    long_seq_len=512,         # from long_from on: 8 windows of 512 (the model's context)
    long_batch=8,
    long_from=1600,
    steps=1900,
    lr=2.5e-3,
    min_lr_frac=0.1,
    warmup=100,
    weight_decay=0.05,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    eval_every=100,
    ckpt_every=50,
    threads=2,
)


def shared_data():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("BITNET_SHARED_DATA", os.path.join(here, "..", "..", "..", "shared", "data"))


def read_text(rel):
    path = os.path.join(shared_data(), "text", rel)
    with open(path, "rb") as f:
        raw = f.read()
    return raw.decode("utf-8"), hashlib.sha256(raw).hexdigest(), len(raw)


def model_config(h, tok):
    return {
        "architectures": ["BitNetForCausalLM"],
        "model_type": "bitnet",
        "hidden_size": h["hidden_size"],
        "intermediate_size": h["intermediate_size"],
        "num_hidden_layers": h["num_hidden_layers"],
        "num_attention_heads": h["num_attention_heads"],
        "num_key_value_heads": h["num_key_value_heads"],
        "head_dim": h["hidden_size"] // h["num_attention_heads"],
        "vocab_size": tok.vocab_size,
        "hidden_act": "relu2",
        "max_position_embeddings": h["long_seq_len"],
        "rope_theta": h["rope_theta"],
        "rms_norm_eps": h["rms_norm_eps"],
        "tie_word_embeddings": True,
        "attention_bias": False,
        "bos_token_id": tok.bos_id,
        "eos_token_id": tok.eos_id,
        "torch_dtype": "bfloat16",
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                "quantization_mode": "online"},
    }


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def prepare(out, h):
    """Tokenizer and token streams, cached in out/data.pt (the BPE takes a few seconds); the cache is used only
    when it was made from the same files and vocabulary size."""
    path = os.path.join(out, "data.pt")
    hashes = {rel: read_text(rel)[1] for rel in TRAIN_FILES + [HELDOUT_FILE, WIKI_FILE]}
    if os.path.exists(path):
        data = torch.load(path)
        if data.get("vocab_size") == h["vocab_size"] and {f["file"]: f["sha256"] for f in data["files"]} == hashes:
            return data
        print(f"{path} was made from other data or another vocabulary size: rebuilding it", flush=True)
    texts, files = [], []
    for rel in TRAIN_FILES:
        t, sha, n = read_text(rel)
        texts.append(t)
        files.append({"file": rel, "sha256": sha, "bytes": n, "use": "train"})
    for rel, use in [(HELDOUT_FILE, "held out (evaluation)"), (WIKI_FILE, "evaluation only")]:
        _, sha, n = read_text(rel)
        files.append({"file": rel, "sha256": sha, "bytes": n, "use": use})
    t0 = time.time()
    counts = bpe.word_counts(texts)
    merges = bpe.learn_merges(counts, h["vocab_size"] - 256 - len(bpe.SPECIAL_TOKENS))
    tok = bpe.Tokenizer(merges)
    print(f"tokenizer: {len(merges)} merges from {len(counts)} distinct pre-tokens in {time.time() - t0:.0f} s",
          flush=True)
    # Each document ends with <|end_of_text|>; windows cross document ends as in most pre-training.
    stream = []
    for t in texts:
        stream.extend(tok.encode(t))
        stream.append(tok.eos_id)
    held, _, held_bytes = read_text(HELDOUT_FILE)
    held_ids = tok.encode(held)
    data = {"tokenizer": tok.save_state(), "vocab_size": h["vocab_size"],
            "stream": torch.tensor(stream, dtype=torch.int32), "heldout": torch.tensor(held_ids, dtype=torch.int32),
            "files": files,
            "train_bytes": sum(len(t.encode()) for t in texts), "heldout_bytes": held_bytes}
    atomic_save(data, path)
    print(f"data: {len(stream)} training tokens ({data['train_bytes'] / len(stream):.2f} bytes/token), "
          f"held-out {len(held_ids)} tokens", flush=True)
    return data


def batch_at(stream, step, h, bos):
    """Batch `step`: windows [BOS] + stream[i : i+T-1] (as perplexity evaluation sees text: a window of
    the text with its first token replaced by BOS) and their next tokens."""
    rng = np.random.default_rng([h["seed"], step])
    long = step >= h["long_from"]
    T, B = (h["long_seq_len"], h["long_batch"]) if long else (h["seq_len"], h["batch"])
    starts = rng.integers(0, len(stream) - T, size=B)
    idx = torch.from_numpy(starts)[:, None] + torch.arange(T)[None, :]
    tgt = stream[idx].long()
    inp = torch.cat([torch.full((B, 1), bos, dtype=torch.long), tgt[:, :-1]], dim=1)
    return inp, tgt


def tokens_seen(step, h):
    short = min(step, h["long_from"])
    return short * h["batch"] * h["seq_len"] + (step - short) * h["long_batch"] * h["long_seq_len"]


def lr_at(step, h):
    if step < h["warmup"]:
        return h["lr"] * (step + 1) / h["warmup"]
    p = (step - h["warmup"]) / max(1, h["steps"] - h["warmup"])
    return h["lr"] * (h["min_lr_frac"] + (1 - h["min_lr_frac"]) * 0.5 * (1 + math.cos(math.pi * p)))


@torch.no_grad()
def heldout_loss(model, held, h, bos, n_windows=16):
    """Mean loss on the second halves of the first n_windows llama.cpp-style windows of the held-out novel."""
    model.eval()
    T = h["seq_len"]
    total, count = 0.0, 0
    for c in range(n_windows):
        w = held[c * T:(c + 1) * T].long().clone()
        tgt = w[1:]
        w[0] = bos
        logits = model(w[None, :-1])[0]
        total += F.cross_entropy(logits[T // 2:], tgt[T // 2:], reduction="sum").item()
        count += T - 1 - T // 2
    model.train()
    return total / count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="working folder: data cache, checkpoint, log, export")
    ap.add_argument("--export-only", action="store_true", help="export the checkpoint as it is, do not train")
    for k, v in DEFAULTS.items():
        ap.add_argument("--" + k.replace("_", "-"), type=type(v), default=v)
    args = ap.parse_args()
    h = {k: getattr(args, k) for k in DEFAULTS}
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(h["threads"])

    data = prepare(args.out, h)
    tok = bpe.Tokenizer.load_state(data["tokenizer"])
    cfg = model_config(h, tok)
    stream, held = data["stream"], data["heldout"]

    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    log_path = os.path.join(args.out, "loss.csv")
    model = BitNet(cfg)
    decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("embed")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith("embed"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": h["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=h["lr"], betas=(0.9, 0.95), eps=1e-8)
    step, elapsed = 0, 0.0
    if args.export_only and not os.path.exists(ckpt_path):
        sys.exit(f"train.py: --export-only needs a checkpoint, and {ckpt_path} does not exist")
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        if ck["hparams"] != h:
            diff = {k: (ck["hparams"].get(k), v) for k, v in h.items() if ck["hparams"].get(k) != v}
            print(f"note: hyperparameters differ from the checkpoint's: {diff}", flush=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, elapsed = ck["step"], ck["elapsed"]
        print(f"resumed at step {step} ({elapsed / 60:.1f} min trained)", flush=True)
        if not args.export_only and os.path.exists(log_path):
            # Rows logged after the checkpoint are logged again as the resumed run reaches them.
            with open(log_path) as f:
                rows = f.read().splitlines()
            keep = [rows[0]] + [r for r in rows[1:] if int(r.split(",")[0]) <= step]
            with open(log_path, "w") as f:
                f.write("\n".join(keep) + "\n")
    else:
        g = torch.Generator().manual_seed(h["seed"])
        model.init_weights(g)
        with open(log_path, "w") as f:
            f.write("step,tokens,train_loss,heldout_loss,lr,elapsed_s\n")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters, {h['num_hidden_layers']} layers, d={h['hidden_size']}, "
          f"vocab {tok.vocab_size}; {h['batch'] * h['seq_len']} tokens per step "
          f"({h['batch']} x {h['seq_len']}, from step {h['long_from']} {h['long_batch']} x {h['long_seq_len']})", flush=True)

    model.train()
    t_last = time.time()
    run_loss, run_n = 0.0, 0
    while step < h["steps"] and not args.export_only:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, h)
        inp, tgt = batch_at(stream, step, h, tok.bos_id)
        logits = model(inp)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_loss += loss.item()
        run_n += 1
        now = time.time()
        elapsed += now - t_last
        t_last = now
        if step % h["eval_every"] == 0 or step == h["steps"] or step == 1:
            hl = heldout_loss(model, held, h, tok.bos_id)
            with open(log_path, "a") as f:
                f.write(f"{step},{tokens_seen(step, h)},{run_loss / run_n:.5f},{hl:.5f},"
                        f"{lr_at(step - 1, h):.6g},{elapsed:.1f}\n")
            tps = tokens_seen(step, h) / max(elapsed, 1e-9)
            print(f"step {step}/{h['steps']} train {run_loss / run_n:.4f} held-out {hl:.4f} "
                  f"lr {lr_at(step - 1, h):.2e} {tps:.0f} tok/s {elapsed / 60:.1f} min", flush=True)
            run_loss, run_n = 0.0, 0
            t_last = time.time()
        if step % h["ckpt_every"] == 0 or step == h["steps"]:
            atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                         "elapsed": elapsed, "hparams": h}, ckpt_path)
            t_last = time.time()

    export_dir = os.path.join(args.out, "hf")
    export.write_hf_dir(export_dir, model, cfg, tok, h["long_seq_len"],
                        {"hparams": h, "step": step, "train_seconds": round(elapsed),
                         "tokens_seen": tokens_seen(step, h), "torch": torch.__version__,
                         "files": data["files"],
                         "train_tokens": len(stream), "train_bytes": data["train_bytes"]})
    print(f"exported {export_dir}", flush=True)


if __name__ == "__main__":
    main()
