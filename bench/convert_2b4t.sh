#!/bin/bash
# Converts a 2B-4T-size synthetic Hugging Face checkpoint (bf16 master weights, 4.8 GB, two shards) with
# `bitnet convert` and reports wall time and peak resident memory (/usr/bin/time -v). Not part of ctest.
#
#   bench/convert_2b4t.sh [BITNET] [WORK_DIR]        (defaults: build/release/apps/bitnet, /tmp/bitnet-convert-2b4t)
#   FORM=packed bench/convert_2b4t.sh ...             the packed uint8 form instead (1.2 GB)
#   TYPES="i2_s tq2_0" bench/convert_2b4t.sh ...      output types to measure (default: i2_s)
#   KEEP=1 ...                                        keep WORK_DIR afterwards
#
# Needs about 6.5 GB of disk in WORK_DIR and /usr/bin/python3 with NumPy.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
BITNET="$(realpath "${1:-$HERE/../build/release/apps/bitnet}")"
WORK="${2:-/tmp/bitnet-convert-2b4t}"
FORM="${FORM:-master}"
TYPES="${TYPES:-i2_s}"
CKPT="$WORK/bitnet-2b4t-$FORM"
mkdir -p "$WORK"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT

if [ ! -f "$CKPT/model.safetensors.index.json" ]; then
  echo "== generating the $FORM checkpoint in $CKPT"
  t0=$(date +%s.%N)
  /usr/bin/python3 "$HERE/make_hf_checkpoint.py" "$CKPT" --preset 2b-4t --form "$FORM" --shards 2
  echo "   $(du -sh "$CKPT" | cut -f1) in $(echo "$(date +%s.%N) - $t0" | bc) s"
fi
echo "== checkpoint: $(du -sb "$CKPT"/*.safetensors | awk '{s+=$1} END {printf "%.2f GB", s/1e9}') of safetensors"

for t in $TYPES; do
  out="$WORK/out-$t.gguf"
  echo "== bitnet convert --type $t"
  /usr/bin/time -v "$BITNET" convert "$CKPT" -o "$out" --type "$t" 2> "$WORK/time-$t.txt" || { cat "$WORK/time-$t.txt"; exit 1; }
  grep "^bitnet convert" "$WORK/time-$t.txt" | sed 's/^/   /'
  wall=$(grep "Elapsed (wall clock)" "$WORK/time-$t.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$WORK/time-$t.txt" | awk '{print $NF}')
  user=$(grep "User time" "$WORK/time-$t.txt" | awk '{print $NF}')
  sys=$(grep "System time" "$WORK/time-$t.txt" | awk '{print $NF}')
  size=$(stat -c %s "$out")
  printf '   wall %s  user %ss  sys %ss  peak RSS %.0f MB  output %.2f GB\n' "$wall" "$user" "$sys" \
    "$(echo "$rss / 1024" | bc -l)" "$(echo "$size / 1000000000" | bc -l)"
  echo "== bitnet validate"
  "$BITNET" validate "$out" | head -3 | sed 's/^/   /'
  rm -f "$out"
done
