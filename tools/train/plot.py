#!/usr/bin/python3
"""Loss curve of a training run (loss.csv written by train.py) as a PNG.

    /usr/bin/python3 tools/train/plot.py build/train/loss.csv -o docs/trained-model-loss.png
"""
import argparse
import csv
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    with open(args.csv) as f:
        rows = list(csv.DictReader(f))
    tokens = [int(r["tokens"]) / 1e6 for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(tokens, [float(r["train_loss"]) for r in rows], label="training batches (mean since last point)")
    ax.plot(tokens, [float(r["heldout_loss"]) for r in rows], label="held-out Persuasion (16 windows)")
    ax.axhline(2.47 * 3.51 * math.log(2), color="gray", linestyle=":", label="xz -9e on Persuasion (2.47 bits/byte)")
    ax.set_xlabel("training tokens (millions)")
    ax.set_ylabel("cross-entropy (nats per token)")
    ax.set_ylim(bottom=min(float(r["train_loss"]) for r in rows) - 0.3, top=8.5)
    ax.set_title("bitnet-austen-5m: BitNet b1.58 (ternary QAT), 2 CPU cores")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = args.output + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, args.output)


if __name__ == "__main__":
    main()
