// llama-bench-like throughput of llama.cpp, through the npm package node-llama-cpp (3.21.1), CPU only.
//
//   node bench/llama_cpp_bench.mjs ORACLE_DIR MODEL.gguf [--pp 512] [--tg 128] [--depth 0] [--reps 5]
//        [--threads 2] [--kv f16|f32] [--fa auto|on|off] [--api addon|public] [--seed 1] [--json] [--verbose]
//
// ORACLE_DIR: where tests/oracles/install.sh installed node-llama-cpp (e.g. build/oracles).
//
// What is measured (the same tests as llama-bench and `bitnet bench`):
//   pp: --pp random token ids evaluated as one batch (one llama_decode) from an empty KV cache; logits for
//       the last position only (what llama-bench's llama_batch_get_one asks for).
//   tg: --tg random token ids evaluated one at a time (one llama_decode of 1 token each) from an empty KV
//       cache, each with its logits (so the LM head runs every step; nothing is sampled through JS).
//   --depth D: each test starts with D random tokens already in the KV cache (llama-bench's -d): they are
//       evaluated once, untimed, and every test truncates the cache back to them.
// One warm-up run of each (pages the memory-mapped weights in), then --reps repetitions; tok/s is averaged
// over repetitions (mean and sample standard deviation), like llama-bench.
//
// --api addon (default): node-llama-cpp's native AddonContext (initBatch / addToBatch / decodeBatch), the
//   calls node-llama-cpp's own batch scheduler makes, and nothing more (internal, but the version is pinned).
// --api public: sequence.controlledEvaluate(), the lowest-level public evaluate API; adds node-llama-cpp's
//   scheduler, locks, thread reservation and a greedy argmax (in C++) of each requested row.
//
// Two clocks: "wall" = performance.now() around the calls (the reported tok_s); "native" = llama.cpp's own
// llama_perf counters for the same calls (start of llama_decode to end of llama_synchronize, exactly the
// interval llama-bench times), read through context.printTimings(). wall - native = JS overhead, reported per
// call, and for a lone 1-token evaluate through both APIs.
//
// Defaults match llama-bench's: F16 K and V cache, flash attention "auto" (on the CPU backend llama.cpp
// resolves auto to enabled: outputs are bitwise those of "on"). Context >= pp+tg tokens; batch = micro-batch
// (node-llama-cpp sets n_ubatch = n_batch) >= pp, so a prompt is one llama_decode (llama-bench: n_ubatch 512).
// Threads: --threads is passed exactly (getLlama maxThreads and createContext threads {ideal, min}); the
// number llama.cpp used is read back and checked.
//
// Exit status: 0 ok, 1 failure, 2 bad command line.
import { readFileSync, existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "../tests/oracles/llama_cpp_common.mjs";

const USAGE =
  "usage: llama_cpp_bench.mjs ORACLE_DIR MODEL.gguf [--pp N] [--tg N] [--depth D] [--reps R] [--threads T] " +
  "[--kv f16|f32] [--fa auto|on|off] [--api addon|public] [--seed S] [--json] [--verbose]";

function fail(code, msg) {
  process.stderr.write(`llama_cpp_bench: ${msg}\n`);
  process.exit(code);
}

let args;
try {
  args = parseArgs(process.argv.slice(2), {
    positional: ["oracleDir", "model"],
    options: {
      "--pp": "int", "--tg": "int", "--depth": "int", "--reps": "int", "--threads": "int", "--seed": "int",
      "--kv": "string", "--fa": "string", "--api": "string", "--json": "flag", "--verbose": "flag",
    },
  });
} catch (e) {
  fail(2, `${e.message}\n${USAGE}`);
}
const pp = args.pp ?? 512;
const tg = args.tg ?? 128;
const depth = args.depth ?? 0;
const reps = args.reps ?? 5;
const threads = args.threads ?? 2;
const kv = (args.kv ?? "f16").toLowerCase();
const fa = (args.fa ?? "auto").toLowerCase();
let api = (args.api ?? "addon").toLowerCase();
if (pp < 0 || tg < 0 || pp + tg === 0) fail(2, "--pp and --tg must be >= 0, not both 0");
if (reps < 1) fail(2, "--reps must be >= 1");
if (depth < 0) fail(2, "--depth must be >= 0");
if (threads < 1) fail(2, "--threads must be >= 1 (this script passes it to llama.cpp exactly)");
if (!["f16", "f32"].includes(kv)) fail(2, "--kv must be f16 or f32");
if (!["auto", "on", "off"].includes(fa)) fail(2, "--fa must be auto, on or off");
if (!["addon", "public"].includes(api)) fail(2, "--api must be addon or public");
if (!existsSync(args.model)) fail(2, `no such model file: ${args.model}`);

// Small deterministic PRNG (mulberry32) for the random token ids.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function meanStd(xs) {
  if (xs.length === 0) return { mean: null, stddev: null };
  const m = xs.reduce((s, x) => s + x, 0) / xs.length;
  if (xs.length < 2) return { mean: m, stddev: 0 };
  const v = xs.reduce((s, x) => s + (x - m) * (x - m), 0) / (xs.length - 1);
  return { mean: m, stddev: Math.sqrt(v) };
}

const entry = `${resolve(args.oracleDir)}/node_modules/node-llama-cpp/dist/index.js`;
if (!existsSync(entry)) fail(1, `node-llama-cpp is not installed in ${args.oracleDir} (run tests/oracles/install.sh)`);
const nlc = await import(pathToFileURL(entry).href);
const { getLlama, LlamaLogLevel } = nlc;
const pkgVersion = JSON.parse(readFileSync(`${resolve(args.oracleDir)}/node_modules/node-llama-cpp/package.json`, "utf8")).version;

// llama.cpp's messages: warn and above to stderr (--verbose: everything); llama_perf lines are kept for parsing.
// Level "info" must reach the logger for printTimings() to be seen at all.
let perfLines = [];
const warnLevels = new Set(["warn", "error", "fatal"]);
const llama = await getLlama({
  gpu: false,
  build: "never",
  usePrebuiltBinaries: true,
  skipDownload: true,
  progressLogs: false,
  maxThreads: threads,
  logLevel: args.verbose ? LlamaLogLevel.debug : LlamaLogLevel.info,
  logger: (level, message) => {
    if (message.includes("llama_perf_context_print")) perfLines.push(message);
    if (args.verbose || warnLevels.has(String(level)))
      process.stderr.write(`[llama.cpp ${level}] ${message.endsWith("\n") ? message : message + "\n"}`);
  },
});

let model, context, sequence;
async function closeAll() {
  sequence?.dispose();
  await context?.dispose();
  await model?.dispose();
  await llama?.dispose();
}

try {
  const t0 = performance.now();
  model = await llama.loadModel({ modelPath: resolve(args.model), gpuLayers: 0, useMmap: true });
  const loadMs = performance.now() - t0;
  const embd = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight");
  const nVocab = Number(embd?.dimensions?.[1] ?? model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length ?? 0);
  if (!(nVocab > 0)) throw new Error("cannot tell the vocabulary size (no token_embd.weight)");
  const kvType = kv.toUpperCase();
  context = await model.createContext({
    contextSize: Math.max(depth + pp + tg + 1, 16),
    batchSize: Math.max(pp, Math.min(depth, 512), 1),
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: fa === "auto" ? "auto" : fa === "on",
    experimentalKvCacheKeyType: kvType,
    experimentalKvCacheValueType: kvType,
    performanceTracking: true,
    failedCreationRemedy: false,
  });
  if (context.contextSize < depth + pp + tg)
    throw new Error(`context size ${context.contextSize} < depth+pp+tg = ${depth + pp + tg}`);
  if (context.batchSize < pp) throw new Error(`batch size ${context.batchSize} < pp = ${pp}`);
  sequence = context.getSequence();
  const rand = rng(args.seed ?? 1);
  const randomToken = () => Math.floor(rand() * nVocab);

  // llama.cpp's own timings since the last call (printTimings prints, then resets, the llama_perf counters).
  // The lines arrive through node-llama-cpp's asynchronous log relay: wait for them.
  async function native() {
    perfLines = [];
    await context.printTimings();
    let p = null, e = null;
    for (let i = 0; i < 100 && (p === null || e === null); ++i) {
      for (const l of perfLines) {
        const mp = /prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/.exec(l);
        if (mp) p = { ms: Number(mp[1]), n: Number(mp[2]) };
        const me = /(?<!prompt )eval time =\s*([\d.]+) ms \/\s*(\d+) runs/.exec(l);
        if (me) e = { ms: Number(me[1]), n: Number(me[2]) };
      }
      if (p === null || e === null) await new Promise((r) => setTimeout(r, 10));
    }
    if (p === null || e === null) return null;
    // llama_perf reports max(1, count) for both counters, so a count is only meaningful where its time is not 0.
    return { ms: p.ms + e.ms, promptTokens: p.n, genRuns: e.n };
  }

  // Two ways to run one llama_decode:
  //   "addon":  node-llama-cpp's native AddonContext (context._ctx): initBatch / addToBatch / decodeBatch, the
  //             very calls node-llama-cpp's own scheduler makes, and nothing else: exactly llama-bench's work
  //             (decode + synchronize, logits for the marked row, no sampling). Internal API, pinned version.
  //   "public": sequence.controlledEvaluate(), the lowest-level public evaluate API (per-token control of
  //             which rows get logits); it also runs node-llama-cpp's batch scheduler, locks, thread
  //             reservation and a greedy sample of the requested row (argmax in C++).
  const addon = context._ctx;
  const seqId = sequence._sequenceId;
  const addonOk =
    Number.isInteger(seqId) &&
    ["initBatch", "addToBatch", "decodeBatch", "removeTokenCellsFromSequence", "getSequenceKvCacheMaxPosition"].every(
      (m) => typeof addon?.[m] === "function");
  if (api === "addon" && !addonOk)
    throw new Error(`node-llama-cpp ${pkgVersion}'s internal AddonContext is not as expected: use --api public`);
  const engine = {
    async clear() {
      if (api === "addon") {
        addon.removeTokenCellsFromSequence(seqId, 0, -1);
        if (addon.getSequenceKvCacheMaxPosition(seqId) !== -1) throw new Error("KV cache not empty after clearing");
      } else {
        await sequence.clearHistory();
        if (sequence.nextTokenIndex !== 0) throw new Error("sequence not empty after clearHistory");
      }
    },
    // Evaluates `tokens` at positions pos0.. with logits for the last one only.
    async eval(tokens, pos0) {
      if (api === "addon") {
        addon.initBatch(tokens.length);
        addon.addToBatch(seqId, pos0, Uint32Array.from(tokens), Uint32Array.of(tokens.length - 1));
        await addon.decodeBatch();
      } else {
        const n = tokens.length;
        const out = await sequence.controlledEvaluate(tokens.map((t, i) => (i === n - 1 ? [t, { generateNext: { token: true } }] : t)));
        if (out[n - 1]?.next?.token == null) throw new Error(`no token for position ${pos0 + n - 1}`);
      }
    },
    position() {
      return api === "addon" ? addon.getSequenceKvCacheMaxPosition(seqId) + 1 : sequence.nextTokenIndex;
    },
  };
  // The --depth context, evaluated once in batches; toDepth() truncates the cache back to it.
  const depthTokens = Array.from({ length: depth }, randomToken);
  let depthFilled = false;
  async function toDepth() {
    if (depth === 0) return engine.clear();
    if (depthFilled && api === "addon") {
      addon.removeTokenCellsFromSequence(seqId, depth, -1);
    } else if (depthFilled) {
      await sequence.eraseContextTokenRanges([{ start: depth, end: sequence.nextTokenIndex }]);
    } else {
      await engine.clear();
      for (let i = 0; i < depth; i += context.batchSize) await engine.eval(depthTokens.slice(i, i + context.batchSize), i);
      depthFilled = true;
    }
    if (engine.position() !== depth) throw new Error(`the cache holds ${engine.position()} tokens, not the depth ${depth}`);
  }

  async function runPP() {
    await toDepth();
    const toks = Array.from({ length: pp }, randomToken);
    await native(); // reset
    const t0 = performance.now();
    await engine.eval(toks, depth);
    const wallMs = performance.now() - t0;
    const nat = await native();
    if (engine.position() !== depth + pp) throw new Error(`pp: sequence holds ${engine.position()} tokens, not ${depth + pp}`);
    const counted = pp === 1 ? nat?.genRuns : nat?.promptTokens;
    if (nat && counted !== pp) throw new Error(`pp: llama.cpp counted ${counted} tokens, not ${pp}`);
    return { wallMs, nativeMs: nat?.ms ?? null };
  }

  async function runTG(n, d = depth) {
    if (d > 0) {
      await toDepth();
    } else {
      await engine.clear();
      depthFilled = false;
    }
    const toks = Array.from({ length: n }, randomToken);
    await native(); // reset
    const t0 = performance.now();
    for (let i = 0; i < n; ++i) await engine.eval([toks[i]], d + i);
    const wallMs = performance.now() - t0;
    const nat = await native();
    if (engine.position() !== d + n) throw new Error(`tg: sequence holds ${engine.position()} tokens, not ${d + n}`);
    if (nat && nat.genRuns !== n) throw new Error(`tg: llama.cpp counted ${nat.genRuns} 1-token decodes, not ${n}`);
    return { wallMs, nativeMs: nat?.ms ?? null };
  }

  // Warm-up (not counted), then the repetitions.
  if (pp > 0) await runPP();
  if (tg > 0) await runTG(tg);
  const ppRuns = [], tgRuns = [];
  for (let r = 0; r < reps; ++r) {
    if (pp > 0) ppRuns.push(await runPP());
    if (tg > 0) tgRuns.push(await runTG(tg));
  }
  const threadsUsed = addon?.getThreads?.() ?? context.currentThreads;
  if (threadsUsed !== threads) throw new Error(`llama.cpp used ${threadsUsed} threads, not ${threads}`);

  // A lone 1-token evaluate from an empty sequence, through both APIs: what one call costs around llama_decode.
  const chosenApi = api;
  const eval1 = {};
  for (const a of addonOk ? ["addon", "public"] : ["public"]) {
    api = a;
    const one = [];
    for (let r = 0; r < Math.max(3, reps); ++r) one.push(await runTG(1, 0));
    await engine.clear();
    const wall = meanStd(one.map((r) => r.wallMs)).mean;
    const nat = one.every((r) => r.nativeMs !== null) ? meanStd(one.map((r) => r.nativeMs)).mean : null;
    eval1[a] = { wall_ms: wall, native_ms: nat, js_overhead_ms: nat === null ? null : wall - nat };
  }
  api = chosenApi;

  function summarize(runs, n, perCall) {
    if (runs.length === 0) return undefined;
    const wall = meanStd(runs.map((r) => (n * 1000) / r.wallMs));
    const haveNative = runs.every((r) => r.nativeMs !== null);
    const nat = haveNative ? meanStd(runs.map((r) => (n * 1000) / r.nativeMs)) : { mean: null, stddev: null };
    const overhead = haveNative ? meanStd(runs.map((r) => (r.wallMs - r.nativeMs) / perCall)).mean : null;
    return {
      tok_s: wall.mean,
      stddev: wall.stddev,
      native_tok_s: nat.mean,
      native_stddev: nat.stddev,
      js_overhead_ms_per_call: overhead,
      wall_ms: meanStd(runs.map((r) => r.wallMs)).mean,
    };
  }
  const result = {
    engine: "llama.cpp",
    package: `node-llama-cpp@${pkgVersion}`,
    llama_cpp_release: llama.llamaCppRelease?.release ?? null,
    model: resolve(args.model),
    arch: model.fileInfo.metadata?.general?.architecture ?? null,
    model_bytes: model.size,
    n_vocab: nVocab,
    threads,
    threads_used: threadsUsed,
    kv_type: kv,
    flash_attn: fa,
    api,
    context_size: context.contextSize,
    batch_size: context.batchSize,
    n_prompt: pp,
    n_gen: tg,
    n_depth: depth,
    repetitions: reps,
    load_ms: loadMs,
    pp: summarize(ppRuns, pp, 1),
    tg: summarize(tgRuns, tg, tg),
    eval1,
  };
  if (eval1.public.native_ms === null) process.stderr.write("llama_cpp_bench: warning: llama.cpp's perf counters were not readable; native figures are null\n");

  if (args.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  } else {
    const f = (x, d = 2) => (x === null || x === undefined ? "n/a" : x.toFixed(d));
    const name = `${result.arch} (${(result.model_bytes / 1e9).toFixed(2)} GB)`;
    console.log(`llama.cpp ${result.llama_cpp_release ?? "?"} via ${result.package} (${api} API), CPU, ${threads} threads, KV ${kv}, flash attention ${fa}`);
    console.log("| model | test | t/s (wall, via JS) | t/s (llama.cpp's own timer) | JS overhead per call |");
    console.log("|---|---|---|---|---|");
    const at = depth > 0 ? ` @ d${depth}` : "";
    if (result.pp)
      console.log(`| ${name} | pp${pp}${at} | ${f(result.pp.tok_s)} ± ${f(result.pp.stddev)} | ${f(result.pp.native_tok_s)} ± ${f(result.pp.native_stddev)} | ${f(result.pp.js_overhead_ms_per_call, 3)} ms |`);
    if (result.tg)
      console.log(`| ${name} | tg${tg}${at} | ${f(result.tg.tok_s)} ± ${f(result.tg.stddev)} | ${f(result.tg.native_tok_s)} ± ${f(result.tg.native_stddev)} | ${f(result.tg.js_overhead_ms_per_call, 3)} ms |`);
    for (const [a, e] of Object.entries(eval1))
      console.log(`1-token evaluate (${a} API): ${f(e.wall_ms, 3)} ms wall, ${f(e.native_ms, 3)} ms in llama.cpp, JS overhead ${f(e.js_overhead_ms, 3)} ms`);
  }
  await closeAll();
} catch (e) {
  process.stderr.write(`llama_cpp_bench: ${e?.stack ?? e}\n`);
  await closeAll().catch(() => {});
  process.exit(1);
}
