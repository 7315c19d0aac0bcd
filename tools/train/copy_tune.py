#!/usr/bin/python3
"""Fine-tunes the trained default model to continue a passage it has just read (copying), which is what makes
prompt-lookup speculative decoding pay, and exports it as a Hugging Face directory for `bitnet convert`.

    /usr/bin/python3 tools/train/copy_tune.py --out build/copy-tune      # from models/bitnet-austen-5m-hf

Language modelling on 2M tokens did not teach the 5M model to copy (docs/trained-model.md), and fine-tuning on
repeated passages alone did not either within 500 steps: its attention became diffuse instead. What works here
is to say which heads should do it. Besides the language-model loss, an auxiliary loss (the mean negative log of
one attention probability per position) asks
  - one head (`--prev-head`, layer 1 head 3) to attend to the previous token, everywhere, and
  - one later head (`--induction-head`, layer 3 head 1), on the second and later copies of a repeated segment,
    to attend to the token after the earlier occurrence of the current token (an induction head),
so the circuit that copies is built from its two known parts; the language-model loss on the copies teaches
what the induction head passes on. The data: windows of the training text as in pre-training, windows that
repeat a segment of the training text, and windows that repeat random tokens (nothing but copying predicts
them); between copies nothing, a blank line, a space, a newline, a quote or 1-3 random tokens; the first copy
of a segment is not scored.

Phases (each with a fresh AdamW, warm-up 20 steps, batches drawn from a generator seeded by (seed, phase,
step), so the run is deterministic at a fixed thread count):
  1. windows of 256, 8 per step (3 text, 3 text repeats, 2 random repeats), segments up to 100 tokens, lr 1.5e-3;
  2. windows of 512, 6 per step (2 / 2 / 2), segments up to 250 tokens (a passage the length of a paragraph),
     lr 1e-3;
  3. windows of 512, 6 per step (4 / 1 / 1), the learning rate decaying to a tenth: text again, to win back
     the held-out loss the copying phases cost;
  4. as 2 at lr 7e-4 for 300 steps: after 3 the model copied 93 % of a passage's tokens but, greedily, went
     astray at the first miss (a token matched to a similar one, " any" taken for " a" and followed by " man");
  5. as 3 with windows 3 / 2 / 1, lr 7e-4 decaying to a tenth.
"""

import argparse
import json
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
import train  # noqa: E402
from model import BitNet  # noqa: E402

PHASES = [
    dict(steps=500, seq_len=256, mix=(3, 3, 2), text_max=100, random_max=64, lr=1.5e-3, decay=False),
    dict(steps=200, seq_len=512, mix=(2, 2, 2), text_max=250, random_max=250, lr=1e-3, decay=False),
    dict(steps=300, seq_len=512, mix=(4, 1, 1), text_max=250, random_max=250, lr=1e-3, decay=True),
    dict(steps=300, seq_len=512, mix=(2, 2, 2), text_max=250, random_max=250, lr=7e-4, decay=False),
    dict(steps=300, seq_len=512, mix=(3, 2, 1), text_max=250, random_max=250, lr=7e-4, decay=True),
]
WARMUP = 20


def load_master(hf_dir):
    """The exported bf16 master weights as float32 parameters of a training-mode model."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    model = BitNet(cfg)
    t = export.read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    state = {"embed.weight": t["model.embed_tokens.weight"].float(), "norm.weight": t["model.norm.weight"].float()}
    for i in range(cfg["num_hidden_layers"]):
        for ours, theirs in {**export.HF_LINEARS, **export.HF_NORMS}.items():
            state[f"layers.{i}.{ours}.weight"] = t[f"model.layers.{i}.{theirs}.weight"].float()
    model.load_state_dict(state)
    return cfg, model


class Batches:
    def __init__(self, stream, tok, vocab, seed):
        self.stream, self.bos, self.vocab, self.seed = stream, tok.bos_id, vocab, seed
        self.sep = tok.encode("\n\n")
        self.space, self.newline, self.quote = tok.encode(" "), tok.encode("\n"), tok.encode('"')

    def separator(self, rng):
        """What stands between copies, drawn per window: nothing, a blank line, a space, a newline, a quote, or
        1-3 random tokens. (With a blank line always, the first run learned to copy by the distance from the
        separator, not by content, and did not copy text whose blank line merged with the full stop before it.)"""
        k = int(rng.integers(0, 6))
        fixed = [[], self.sep, self.space, self.newline, self.quote]
        return fixed[k] if k < len(fixed) else rng.integers(0, self.vocab - 5, size=int(rng.integers(1, 4))).tolist()

    def repeated(self, seg, sep, T):
        """[BOS] seg sep seg sep ... cut to T + 1 tokens, and which targets are scored (not the first copy)."""
        seq, scored, first = [self.bos], [False], True
        while len(seq) < T + 1:
            piece = seg + sep
            seq += piece
            scored += [not first] * len(piece)
            first = False
        return seq[:T + 1], scored[:T + 1]

    def __call__(self, phase, step, ph):
        """Inputs [B, T], targets [B, T] (-100 where not scored), and each window's period (0: plain text)."""
        rng = np.random.default_rng([self.seed, phase, step])
        T, (n_text, n_rep, n_rand) = ph["seq_len"], ph["mix"]
        rows, scored, periods = [], [], []
        for _ in range(n_text):
            s = int(rng.integers(0, len(self.stream) - T))
            rows.append([self.bos] + self.stream[s:s + T].tolist())
            scored.append([True] * (T + 1))
            periods.append(0)
        for kind, n in (("text", n_rep), ("random", n_rand)):
            for _ in range(n):
                if kind == "text":
                    L = int(rng.integers(16, ph["text_max"]))
                    s = int(rng.integers(0, len(self.stream) - L))
                    seg = self.stream[s:s + L].tolist()
                else:
                    L = int(rng.integers(8, ph["random_max"]))
                    seg = rng.integers(0, self.vocab - 5, size=L).tolist()  # not the 5 special tokens
                sep = self.separator(rng)
                r, m = self.repeated(seg, sep, T)
                rows.append(r)
                scored.append(m)
                periods.append(L + len(sep))
        x = torch.tensor(rows)
        tgt = x[:, 1:].clone()
        tgt[~torch.tensor(scored)[:, 1:]] = -100
        return x[:, :-1], tgt, periods


def attention_loss(attn, periods, prev_head, induction_head):
    """Mean -log p of the previous token for prev_head, and of the token after the earlier occurrence of the
    current one (period p back, plus one) for induction_head on repeated windows."""
    T = attn[0].shape[-1]
    i = torch.arange(1, T)
    a = attn[prev_head[0]][:, prev_head[1]]
    loss = -torch.log(a[:, i, i - 1] + 1e-6).mean()
    b = attn[induction_head[0]][:, induction_head[1]]
    terms = []
    for row, p in enumerate(periods):
        if p:
            j = torch.arange(1 + p, T)
            terms.append(-torch.log(b[row, j, j - p + 1] + 1e-6).mean())
    return loss + torch.stack(terms).mean() if terms else loss


@torch.no_grad()
def natural_copy_accuracy(model, held, tok, length, n=8):
    """The same with the text tokenized as a prompt is: decode P, encode "P\n\nP" in one piece (the blank line
    may merge with the punctuation before it); scored on the last len(P) - 2 tokens."""
    model.eval()
    hit = total = 0
    for c in range(n):
        text = tok.decode(held[5000 + c * 400:5000 + c * 400 + length].tolist())
        x = torch.tensor([tok.encode(text + "\n\n" + text, bos=True)])
        k = len(tok.encode(text)) - 2
        logits = model(x[:, :-1])[0]
        hit += (logits[-k:].argmax(-1) == x[0, -k:]).sum().item()
        total += k
    model.train()
    return hit / total


@torch.no_grad()
def copy_accuracy(model, held, bos, sep, length, n=8):
    """How often the argmax is the next token of a held-out passage the model has just read: [BOS] P sep P."""
    model.eval()
    hit = total = 0
    for c in range(n):
        p = held[5000 + c * 400:5000 + c * 400 + length].tolist()
        x = torch.tensor([[bos] + p + sep + p])
        logits = model(x[:, :-1])[0]
        start = 1 + len(p) + len(sep)
        hit += (logits[start - 1:].argmax(-1) == x[0, start:]).sum().item()
        total += length
    model.train()
    return hit / total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="working folder: data cache, checkpoint, log, export")
    ap.add_argument("--from-hf", default=os.path.join(os.path.dirname(__file__), "..", "..", "models",
                                                     "bitnet-austen-5m-hf"))
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prev-head", default="1,3", help="LAYER,HEAD taught to attend to the previous token")
    ap.add_argument("--induction-head", default="3,1", help="LAYER,HEAD taught the induction pattern")
    ap.add_argument("--aux-weight", type=float, default=1.0)
    args = ap.parse_args()
    prev_head = tuple(int(v) for v in args.prev_head.split(","))
    induction_head = tuple(int(v) for v in args.induction_head.split(","))
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(args.threads)

    h = dict(train.DEFAULTS)
    data = train.prepare(args.out, h)
    tok = bpe.Tokenizer.load_state(data["tokenizer"])
    stream, held = data["stream"], data["heldout"]
    cfg, model = load_master(args.from_hf)
    batches = Batches(stream, tok, cfg["vocab_size"], args.seed)
    log_path = os.path.join(args.out, "copy_tune.csv")
    ckpt_path = os.path.join(args.out, "copy_tune.pt")
    start_phase, start_step, elapsed = 0, 0, 0.0
    if os.path.exists(ckpt_path):
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        start_phase, start_step, elapsed = ck["phase"], ck["step"], ck["elapsed"]
        print(f"resumed at phase {start_phase + 1} step {start_step}", flush=True)
    else:
        with open(log_path, "w") as f:
            f.write("phase,step,lm_loss,attention_loss,copy_acc_160,natural_copy_acc_160,heldout_loss,lr,elapsed_s\n")

    def evaluate(phase, step, lm, aux, lr):
        a64 = copy_accuracy(model, held, tok.bos_id, batches.sep, 160)
        a160 = natural_copy_accuracy(model, held, tok, 160)
        hl = train.heldout_loss(model, held, h, tok.bos_id)
        with open(log_path, "a") as f:
            f.write(f"{phase + 1},{step},{lm:.4f},{aux:.4f},{a64:.4f},{a160:.4f},{hl:.4f},{lr:.3g},{elapsed:.0f}\n")
        print(f"phase {phase + 1} step {step}: lm {lm:.3f} attention {aux:.3f} copy accuracy {a64:.3f} (160 tokens) "
              f"{a160:.3f} (as a prompt) held-out {hl:.4f} lr {lr:.2e} {elapsed / 60:.1f} min", flush=True)

    if start_phase == 0 and start_step == 0:
        evaluate(0, 0, float("nan"), float("nan"), 0.0)
    model.train()
    for phase in range(start_phase, len(PHASES)):
        ph = PHASES[phase]
        decay = [p for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith("embed")]
        rest = [p for n, p in model.named_parameters() if not (p.dim() == 2 and not n.startswith("embed"))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": h["weight_decay"]},
                                 {"params": rest, "weight_decay": 0.0}], lr=ph["lr"], betas=(0.9, 0.95), eps=1e-8)
        # A resumed phase restarts its optimizer (checkpoints keep weights only, at phase boundaries and every
        # 50 steps); the schedule continues from the step.
        sums, t_last = [0.0, 0.0], time.time()
        for step in range(start_step if phase == start_phase else 0, ph["steps"]):
            lr = ph["lr"] * min(1.0, (step + 1) / WARMUP)
            if ph["decay"]:
                lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / ph["steps"]))
            for g in opt.param_groups:
                g["lr"] = lr
            x, tgt, periods = batches(phase, step, ph)
            attn = []
            logits = model(x, attn=attn)
            lm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)
            aux = attention_loss(attn, periods, prev_head, induction_head)
            opt.zero_grad(set_to_none=True)
            (lm + args.aux_weight * aux).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sums[0] += lm.item()
            sums[1] += aux.item()
            now = time.time()
            elapsed += now - t_last
            t_last = now
            if (step + 1) % 50 == 0 or step + 1 == ph["steps"]:
                n = 50 if (step + 1) % 50 == 0 else (step + 1) % 50
                evaluate(phase, step + 1, sums[0] / n, sums[1] / n, lr)
                sums = [0.0, 0.0]
                done = step + 1 == ph["steps"]
                train.atomic_save({"model": model.state_dict(), "phase": phase + 1 if done else phase,
                                   "step": 0 if done else step + 1, "elapsed": elapsed}, ckpt_path)
                t_last = time.time()

    export_dir = os.path.join(args.out, "hf")
    export.write_hf_dir(export_dir, model, cfg, tok, h["long_seq_len"],
                        {"fine_tuned_from": os.path.basename(os.path.normpath(args.from_hf)),
                         "recipe": "tools/train/copy_tune.py", "phases": PHASES, "seed": args.seed,
                         "prev_head": prev_head, "induction_head": induction_head, "aux_weight": args.aux_weight,
                         "train_seconds": round(elapsed), "torch": torch.__version__})
    print(f"exported {export_dir}", flush=True)


if __name__ == "__main__":
    main()
