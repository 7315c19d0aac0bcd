// Shared part of the llama.cpp oracle scripts (llama_cpp_logprobs.mjs, llama_cpp_perplexity.mjs).
// llama.cpp comes from the npm package node-llama-cpp@3.21.1 (prebuilt llama.cpp v0.4.0 for linux-x64),
// installed by tests/oracles/install.sh into ORACLE_DIR.
//
// Numerics we force so that the oracle is as close as llama.cpp allows to exact F32 inference:
//   * CPU only (gpu: false, gpuLayers: 0);
//   * F32 K and V cache (node-llama-cpp's default is F16, which would round K, V and, through the K·Q
//     matmul's vec_dot type, Q to F16);
//   * flash attention off (its CPU kernel accumulates V·softmax in F16 when V is F16, and is a different
//     summation order in any case);
//   * one sequence, context size >= the number of tokens, batch size = context size, so that every token is
//     evaluated in one llama_decode call and no context shift can ever happen.
// What llama.cpp still does differently from exact arithmetic is described in README.md.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

export function parseArgs(argv, spec) {
  // spec: { positional: ["oracleDir", "model"], options: { "--tokens": "string", "--ctx": "int", ... } }
  const out = {};
  const pos = [];
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const [name, inline] = a.split(/=(.*)/s, 2);
      if (!(name in spec.options)) throw new Error(`unknown option ${name}`);
      const kind = spec.options[name];
      if (kind === "flag") { out[name.slice(2)] = true; continue; }
      const v = inline !== undefined ? inline : argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      out[name.slice(2)] = kind === "int" ? parseIntStrict(v, name) : v;
    } else {
      pos.push(a);
    }
  }
  if (pos.length !== spec.positional.length) throw new Error(`expected ${spec.positional.join(" ")}`);
  spec.positional.forEach((n, i) => (out[n] = pos[i]));
  return out;
}

function parseIntStrict(s, what) {
  if (!/^\s*-?\d+\s*$/.test(s)) throw new Error(`${what}: not an integer: ${JSON.stringify(s)}`);
  return Number.parseInt(s, 10);
}

// "1,2,3", "1 2 3", one per line, or any mix of commas and whitespace.
export function parseTokenList(text, what) {
  const parts = text.split(/[\s,]+/).filter((s) => s.length > 0);
  return parts.map((s) => {
    const t = parseIntStrict(s, what);
    if (t < 0) throw new Error(`${what}: negative token ${t}`);
    return t;
  });
}

// Loads node-llama-cpp from ORACLE_DIR, then the model (CPU only) and one context of at least `contextSize`
// tokens with F32 KV cache and flash attention off. llama.cpp's own messages at level "warn" and above go to
// stderr (with --verbose, everything down to "debug"), so a load failure shows llama.cpp's exact reason.
export async function openModel({ oracleDir, modelPath, contextSize, threads, verbose }) {
  const entry = `${resolve(oracleDir)}/node_modules/node-llama-cpp/dist/index.js`;
  if (!existsSync(entry)) throw new Error(`node-llama-cpp is not installed in ${oracleDir} (run tests/oracles/install.sh)`);
  const nlc = await import(pathToFileURL(entry).href);
  const { getLlama, LlamaLogLevel } = nlc;
  const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    maxThreads: threads,
    logLevel: verbose ? LlamaLogLevel.debug : LlamaLogLevel.warn,
    logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message.endsWith("\n") ? message : message + "\n"}`),
  });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: resolve(modelPath), gpuLayers: 0, useMmap: true });
  const loadMs = performance.now() - t0;
  const ctxSize = Math.max(contextSize, 1);
  const context = await model.createContext({
    contextSize: ctxSize,
    batchSize: ctxSize,
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    failedCreationRemedy: false,
  });
  if (context.contextSize < contextSize) throw new Error(`context size ${context.contextSize} < ${contextSize}`);
  if (context.flashAttention !== false) throw new Error(`flash attention is ${context.flashAttention}, wanted off`);
  const sequence = context.getSequence();
  return { nlc, llama, model, context, sequence, loadMs };
}

// Evaluates `tokens` as one sequence starting at position 0 (nothing is prepended) and calls
// onDist(i, probabilities) for every position i in `wanted` (default: all), where `probabilities` is
// llama.cpp's distribution of the token that follows tokens[0..i], as a Map<token, probability>.
// With the default sampler options (temperature 0: the chain is only `greedy`, which does not touch the
// logits) node-llama-cpp returns the softmax of the raw logits over the whole vocabulary, computed in float32:
// p = expf(l - max) / sum_float(expf(l - max)).
// Only positions in `wanted` request outputs, exactly like llama.cpp's own tools mark batch.logits[].
// The Maps are handed over one at a time and dropped afterwards, so a 128k vocabulary over hundreds of
// positions does not pile up gigabytes of Maps. The sequence's history is cleared first, so each call starts
// from an empty KV cache. All tokens go to one llama_decode when batch size >= tokens.length.
export async function evaluateDistributions(sequence, tokens, wanted, onDist) {
  const want = wanted ?? tokens.map((_, i) => i);
  const wantSet = new Set(want);
  const seen = new Set();
  let failure = null;
  await sequence.clearHistory();
  const input = tokens.map((t, i) => (wantSet.has(i) ? [t, { generateNext: { probabilities: true } }] : t));
  const t0 = performance.now();
  // node-llama-cpp calls onTokenResult synchronously and swallows what it throws: keep the first error.
  await sequence.controlledEvaluate(input, {
    onTokenResult(i, output) {
      try {
        const p = output?.next?.probabilities;
        if (!(p instanceof Map)) throw new Error(`no probabilities returned for position ${i}`);
        if (seen.has(i)) throw new Error(`position ${i} reported twice`);
        seen.add(i);
        if (!failure) onDist(i, p);
      } catch (e) {
        failure ??= e;
      } finally {
        if (output?.next) delete output.next.probabilities;
      }
    },
  });
  const evalMs = performance.now() - t0;
  if (failure) throw failure;
  for (const i of want) if (!seen.has(i)) throw new Error(`no probabilities returned for position ${i}`);
  return { evalMs };
}

export async function closeAll({ llama, model, context, sequence }) {
  sequence?.dispose();
  await context?.dispose();
  await model?.dispose();
  await llama?.dispose();
}
