#!/usr/bin/env bash
# bench/compare.sh: benches `bitnet` and llama.cpp (npm node-llama-cpp@3.21.1) in one run on the same
# generated 2B-4T-shape model and prints a markdown table with the ratios bitnet / llama.cpp.
#
#   bench/compare.sh [--pp 512] [--tg 128] [--depth 0] [--reps 3] [--threads 2] [--quick] [--out RESULTS.json]
#
#   --depth D      every test starts with D tokens already in the context (llama-bench's -d): attention over
#                  a long context (evaluated once per engine and model, untimed)
#   --quick        a 4-layer model of the 2B-4T width (d 2560, ff 6912, 20/5 heads, LLaMA-3 vocabulary)
#                  instead of all 30 layers: a smoke test of the whole pipeline, not a measurement
#   --out FILE     also write every raw result (the three JSON reports, parameters, machine) to FILE
#
# Models (same seed, so the same ternary weights in both types), written to a temporary folder and deleted
# at the end (about 1.2 GB each at full size; $TMPDIR picks the folder):
#   bitnet-b1.58 / I2_S  -> bitnet
#   bitnet       / TQ2_0 -> bitnet and llama.cpp
# Builds nothing: needs build/release/apps/bitnet. Installs node-llama-cpp into build/oracles (or
# $BITNET_ORACLE_DIR) with tests/oracles/install.sh; without npm/the registry the llama.cpp row is skipped.
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

pp=512 tg=128 depth=0 reps=3 threads=2 quick=0 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --pp) pp=${2:?--pp needs a value}; shift 2 ;;
    --tg) tg=${2:?--tg needs a value}; shift 2 ;;
    --depth) depth=${2:?--depth needs a value}; shift 2 ;;
    --reps) reps=${2:?--reps needs a value}; shift 2 ;;
    --threads) threads=${2:?--threads needs a value}; shift 2 ;;
    --quick) quick=1; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
for v in "pp=$pp" "tg=$tg" "depth=$depth" "reps=$reps" "threads=$threads"; do
  case "${v#*=}" in ''|*[!0-9]*) echo "compare.sh: --${v%%=*} must be a non-negative integer" >&2; exit 2 ;; esac
done
if [ "$reps" -lt 1 ] || [ "$threads" -lt 1 ] || [ $((pp + tg)) -eq 0 ]; then
  echo "compare.sh: need --reps >= 1, --threads >= 1 and --pp or --tg > 0" >&2; exit 2
fi
[ -n "$out" ] && out=$(realpath -m "$out")

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bitnet=build/release/apps/bitnet
if [ ! -x "$bitnet" ]; then
  echo "compare.sh: $root/$bitnet is missing. Build it first:" >&2
  echo "  cmake --preset release && cmake --build --preset release -j \"\$(nproc)\"" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "compare.sh: python3 is needed to read the results" >&2; exit 1; }
log() { echo "[compare] $*" >&2; }
if [ "$threads" -gt "$(nproc)" ]; then log "warning: --threads $threads > $(nproc) cores"; fi

# --- llama.cpp through npm ---------------------------------------------------------------------------
oracle_dir=${BITNET_ORACLE_DIR:-$root/build/oracles}
llama=1 llama_note="" llama_state=ok
if ! command -v node >/dev/null; then
  llama=0 llama_state=skipped llama_note="skipped: node is not installed"
else
  set +e
  tests/oracles/install.sh "$oracle_dir" --omit=optional node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 >&2
  rc=$?
  set -e
  if [ $rc -ne 0 ]; then llama=0 llama_state=skipped llama_note="skipped: node-llama-cpp could not be installed (npm or the registry unreachable?)"; fi
fi
[ $llama -eq 1 ] || log "llama.cpp $llama_note"

# --- models ------------------------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bitnet-compare.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
if [ $quick -eq 1 ]; then
  # synth's --preset overrides --layers, so the 2B-4T width is spelled out.
  shape=(--dim 2560 --hidden-dim 6912 --heads 20 --kv-heads 5 --layers 4 --vocab llama3)
  shape_name="2B-4T width, 4 layers (--quick)"
  need_mb=1600
else
  shape=(--preset 2b-4t)
  shape_name="2B-4T (30 layers)"
  need_mb=2600
fi
avail_mb=$(df -Pm "$tmp" | awk 'NR==2 {print $4}')
if [ "${avail_mb:-0}" -lt $need_mb ]; then
  echo "compare.sh: $tmp has ${avail_mb} MB free, the models need about $need_mb MB (set TMPDIR)" >&2; exit 1
fi
log "generating the models in $tmp ($shape_name)"
"$bitnet" synth -o "$tmp/i2_s.gguf" "${shape[@]}" --type i2_s
"$bitnet" synth -o "$tmp/tq2_0.gguf" "${shape[@]}" --arch bitnet --type tq2_0

# --- benches (one after the other, never at the same time) -------------------------------------------
# Another process using the cores (a build, a test run) slows whichever bench it overlaps and makes the ratios
# meaningless; the load average lags by a minute, so measure what the other processes use now (/proc/stat over
# 2 s, before any bench starts), wait up to a minute for them to finish, and say so in the report if they do not.
others_busy() {  # percent of all cores busy, over 2 s
  local a b
  a=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)); sleep 2
  b=($(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat))
  awk -v u=$((b[0] - a[0])) -v i=$((b[1] - a[1])) 'BEGIN { printf "%d", ((u + i) > 0 ? 100 * u / (u + i) : 0) }'
}
busy_limit=15  # percent of the cores other processes may use when the benches start
busy=$(others_busy)
for _ in $(seq 1 20); do
  [ "$busy" -le $busy_limit ] && break
  log "other processes use ${busy} % of the cores: waiting for them (ratios from a busy machine mean little)"
  sleep 1; busy=$(others_busy)
done
[ "$busy" -le $busy_limit ] || log "WARNING: other processes still use ${busy} % of the cores; the report says so"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
status=0
# i2_s_q6: the I2_S model with --lm-head q6, the head `bitnet run`, `chat` and `serve` use by default (auto: 6-bit
# rows for a float head). --roofline: each bitnet run also reads the model's weights the way decoding reads them
# after every generated token, and reports decode as a fraction of the speed that allows.
for run in i2_s tq2_0 i2_s_q6; do
  w=${run%_q6} extra=()
  [ "$run" = i2_s_q6 ] && extra=(--lm-head q6)
  log "bitnet bench: $run (pp $pp, tg $tg, depth $depth, $reps repetitions, $threads threads)"
  if ! "$bitnet" bench -m "$tmp/$w.gguf" -p "$pp" -n "$tg" -d "$depth" -r "$reps" -t "$threads" --kv-type f16 --json \
      --profile --roofline "${extra[@]}" >"$tmp/bitnet_$run.json"; then
    log "bitnet bench failed on $run"; rm -f "$tmp/bitnet_$run.json"; status=1
  fi
done
if [ $llama -eq 1 ]; then
  log "llama.cpp (node-llama-cpp): tq2_0 (pp $pp, tg $tg, depth $depth, $reps repetitions, $threads threads)"
  if ! node bench/llama_cpp_bench.mjs "$oracle_dir" "$tmp/tq2_0.gguf" --pp "$pp" --tg "$tg" --depth "$depth" --reps "$reps" \
      --threads "$threads" --json >"$tmp/llama_cpp.json"; then
    log "llama.cpp bench failed"; rm -f "$tmp/llama_cpp.json"; status=1; llama_state=failed llama_note="its bench failed (messages above)"
  fi
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------------------
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (modified)"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
TMPD=$tmp PP=$pp TG=$tg DEPTH=$depth REPS=$reps THREADS=$threads QUICK=$quick SHAPE="$shape_name" OUT="$out" \
COMMIT="$commit" CPU="${cpu:-unknown}" NCPU="$(nproc)" LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" BUSY="$busy" BUSY_LIMIT=$busy_limit \
LLAMA_NOTE="$llama_note" LLAMA_STATE="$llama_state" python3 - <<'EOF'
import json, os, datetime
E = os.environ
tmp, pp, tg, threads, quick = E["TMPD"], int(E["PP"]), int(E["TG"]), int(E["THREADS"]), E["QUICK"] == "1"
depth = int(E["DEPTH"])
at = f" @ d{depth}" if depth else ""

def load(name):
    try:
        with open(os.path.join(tmp, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def flat(r):
    """`bitnet bench --json` lists its tests; this run has one pp and one tg test at most."""
    if r is None or "tests" not in r:
        return r
    out = {k: v for k, v in r.items() if k != "tests"}
    for t in r["tests"]:
        k = "pp" if t["n_prompt"] else "tg"
        out[k] = {"tok_s": t["tok_s"], "stddev": t["stddev"], "samples": t["samples"]}
        if "profile" in t:
            out.setdefault("profile", {})[k] = t["profile"]
        if "roofline" in t:
            out["roofline"] = t["roofline"]
    return out

bi, bt, lc = flat(load("bitnet_i2_s.json")), flat(load("bitnet_tq2_0.json")), load("llama_cpp.json")
bq = flat(load("bitnet_i2_s_q6.json"))

def fig(r, k):
    return (r or {}).get(k) or {}

# llama.cpp's figure is its own llama_perf timer (start of llama_decode to end of llama_synchronize: the
# interval llama-bench times, and like `bitnet bench` measured inside the engine); the wall time seen from
# JavaScript adds the hand-over between Node's thread and the decode thread, which is not llama.cpp's cost.
native = bool(lc) and all(fig(lc, k).get("native_tok_s") for k in ("pp", "tg") if fig(lc, k))
def speed(r, k):
    f = fig(r, k)
    if lc is not None and r is lc and native:
        return f.get("native_tok_s"), f.get("native_stddev")
    return f.get("tok_s"), f.get("stddev")

def cell(r, k):
    if r is None: return "failed"
    v, sd = speed(r, k)
    return "—" if v is None else f"{v:.2f} ± {sd:.2f}"

def ratio(r, k):
    a, b = speed(r, k)[0], speed(lc, k)[0] if lc else None
    return f"{a / b:.2f}x" if a and b else "—"

print(f"\n## bitnet vs llama.cpp: {E['SHAPE']}, {threads} threads, pp{pp} / tg{tg}{at}, {E['REPS']} repetitions\n")
print(f"machine: {E['CPU']}, {E['NCPU']} cores; load average before {E['LOAD_BEFORE']}, after {E['LOAD_AFTER']}; "
      f"other processes used {E['BUSY']} % of the cores when the benches started")
if int(E["BUSY"]) > int(E["BUSY_LIMIT"]):
    print(f"**WARNING: the machine was busy ({E['BUSY']} % of its cores used by other processes) when the benches "
          "started: these figures are not a measurement.**")
print(f"bitnet: commit {E['COMMIT']}, ISA {(bi or bt or {}).get('isa', '?')}, KV cache f16")
if lc:
    print(f"llama.cpp: {lc['package']} (llama.cpp {lc.get('llama_cpp_release')}), CPU, {lc['api']} API, "
          f"KV cache {lc['kv_type']}, flash attention {lc['flash_attn']}"
          + (" (resolves to on for the CPU backend)" if lc["flash_attn"] == "auto" else "")
          + f", threads used {lc['threads_used']}")
print()
print(f"| engine | weights | pp{pp}{at} tok/s | tg{tg}{at} tok/s | pp: bitnet / llama.cpp | tg: bitnet / llama.cpp |")
print("|---|---|---|---|---|---|")
print(f"| bitnet | I2_S (bitnet-b1.58) | {cell(bi, 'pp')} | {cell(bi, 'tg')} | {ratio(bi, 'pp')} | {ratio(bi, 'tg')} |")
print(f"| bitnet | TQ2_0 (bitnet) | {cell(bt, 'pp')} | {cell(bt, 'tg')} | {ratio(bt, 'pp')} | {ratio(bt, 'tg')} |")
print(f"| bitnet `--lm-head q6` (run's default) | I2_S (bitnet-b1.58) | {cell(bq, 'pp')} | {cell(bq, 'tg')} | {ratio(bq, 'pp')} | {ratio(bq, 'tg')} |")
if lc:
    print(f"| llama.cpp (node-llama-cpp) | TQ2_0 (bitnet) | {cell(lc, 'pp')} | {cell(lc, 'tg')} | 1.00x | 1.00x |")
else:
    word = "failed" if E["LLAMA_STATE"] == "failed" else "skipped"
    print(f"| llama.cpp (node-llama-cpp) | TQ2_0 (bitnet) | {word} | {word} | — | — |")
ref_pp = {128: "88–107", 512: "66"}.get(pp, "— (pp128 88–107, pp512 66)")
ref_tg = {128: "20.0–21.8"}.get(tg, "— (tg128 20.0–21.8)")
if not depth:
    print(f"| bitnet.cpp, llama-bench: **quoted from the issue, not measured here** (2 threads, full 30 layers) "
          f"| I2_S | {ref_pp} | {ref_tg} | | |")
print()
if not lc:
    print(f"llama.cpp: {E['LLAMA_NOTE']}")
else:
    if native:
        parts = [f"{k} {fig(lc, k)['tok_s']:.2f} tok/s (JS overhead {fig(lc, k)['js_overhead_ms_per_call']:.2f} ms per call)"
                 for k in ("pp", "tg") if fig(lc, k)]
        print("llama.cpp figures are llama.cpp's own timer (the interval llama-bench times); "
              "seen from JavaScript: " + "; ".join(parts) + ".")
    else:
        print("llama.cpp figures are wall time seen from JavaScript (llama.cpp's own timer was not readable).")
# Against the quoted bitnet.cpp figures only where the run is the same test (full model, 2 threads).
if not quick and threads == 2 and bi and not depth:
    q = []
    if pp in (128, 512) and fig(bi, "pp").get("tok_s"):
        lo, hi = {128: (88, 107), 512: (66, 66)}[pp]
        v = fig(bi, "pp")["tok_s"]
        q.append(f"pp{pp} {v / hi:.2f}x" + ("" if lo == hi else f"–{v / lo:.2f}x"))
    if tg == 128 and fig(bi, "tg").get("tok_s"):
        v = fig(bi, "tg")["tok_s"]
        q.append(f"tg128 {v / 21.8:.2f}x–{v / 20.0:.2f}x")
    if q:
        print("bitnet I2_S vs the quoted bitnet.cpp figures (different run, same machine class): " + ", ".join(q) + ".")
elif quick:
    print("--quick: a 4-layer model; the ratios only show that the pipeline works, and the quoted figures "
          "(30 layers) are not comparable.")
for label, r in (("I2_S", bi), ("TQ2_0", bt), ("I2_S --lm-head q6", bq)):
    rf = (r or {}).get("roofline")
    if rf and rf.get("tg_tok_s"):
        frac = f", tg{tg} reaches {100 * rf['tg_fraction']:.0f} % of it" if tg and rf.get("tg_fraction") else ""
        print(f"memory roofline, bitnet {label}: its weights read as decoding reads them at {rf['weights_gb_s']:.1f} GB/s "
              f"with {threads} threads (a 1 GiB stream: {rf['stream_gb_s']:.1f}), "
              f"{rf['bytes_per_token'] / 1e9:.3f} GB per token -> {rf['tg_tok_s']:.1f} tok/s{frac}")
for label, r in (("I2_S", bi), ("I2_S --lm-head q6", bq)):
    p = ((r or {}).get("profile") or {}).get("tg")
    if p and p.get("total_ms"):
        t = p["total_ms"]
        print(f"decode time, bitnet {label}: ternary GEMV {100 * p['linear_ms'] / t:.0f} %, LM head "
              f"{100 * p['lm_head_ms'] / t:.0f} %, attention {100 * p['attention_ms'] / t:.0f} %, rest "
              f"{100 * p['other_ms'] / t:.0f} %")
print("Timings on a shared machine are noisy: compare ratios from one run, not absolute numbers across runs.")

if E["OUT"]:
    with open(E["OUT"], "w") as f:
        json.dump({"date": datetime.datetime.now().isoformat(timespec="seconds"), "commit": E["COMMIT"],
                   "cpu": E["CPU"], "cores": int(E["NCPU"]), "load_before": E["LOAD_BEFORE"],
                   "load_after": E["LOAD_AFTER"], "others_busy_percent": int(E["BUSY"]), "shape": E["SHAPE"], "quick": quick, "n_prompt": pp,
                   "n_gen": tg, "n_depth": depth, "repetitions": int(E["REPS"]), "threads": threads,
                   "bitnet_i2_s": bi, "bitnet_tq2_0": bt, "bitnet_i2_s_lm_head_q6": bq, "llama_cpp": lc}, f, indent=2)
        f.write("\n")
    print(f"raw results: {E['OUT']}")
EOF
exit $status
