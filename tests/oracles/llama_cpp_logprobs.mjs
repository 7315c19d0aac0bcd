// llama.cpp oracle: next-token log-probabilities at every position of one token sequence.
//
// Usage: node llama_cpp_logprobs.mjs ORACLE_DIR MODEL.gguf --tokens 1,2,3 --out OUT.f32 [--threads N]
//                                    [--json META.json] [--verbose]
//   ORACLE_DIR  where tests/oracles/install.sh installed node-llama-cpp@3.21.1 (+ @node-llama-cpp/linux-x64)
//   --tokens    token ids, comma and/or whitespace separated; evaluated as ONE sequence from position 0.
//               Nothing is added: put the BOS id first yourself if the test wants one.
//   --out       raw little-endian float32 [n_tokens][n_vocab]: row i = log P(next token | tokens[0..i]).
//   --json      optional: also write {n_tokens, n_vocab, load_ms, eval_ms, context_size, threads}.
// Prints one JSON line with the same summary to stdout. Exit 0 on success, 1 on any failure (llama.cpp's
// own messages, e.g. why a model does not load, are on stderr).
//
// Precision: node-llama-cpp does not expose raw logits (its addon only returns sampled tokens, the
// probability list and embeddings), so the rows are log() of the probabilities it returns. Those are a float32
// softmax of llama.cpp's float32 logits: p_j = expf(l_j - max) / s, with s a float32 running sum over the
// vocabulary in descending-logit order. Hence:
//   * log p_j = (l_j - max) - log(s) up to ~1 ulp of p_j (~6e-8 relative, i.e. ~6e-8 absolute in log p),
//     plus the rounding of expf and the division;
//   * the float32 sum s carries a relative error of up to ~n_vocab * 6e-8 in the worst case (typically
//     ~sqrt(n_vocab) * 6e-8): this is the SAME additive offset on every entry of a row, so differences of
//     log-probabilities within a row (= logit differences) do not see it;
//   * where l_j - max < -87.3, expf gives a float32 subnormal (fewer significant bits), and below about
//     -103.97 it gives 0, so log p is inaccurate there, or -Infinity. Compare such entries loosely, or compare
//     only entries with l_j - max > -87.3.
// Full vocabulary at every position: checked (the script fails otherwise). Row i was checked to equal, to
// ~6e-7, the last-position distribution of evaluating tokens[0..i] alone.
import { writeFileSync } from "node:fs";
import { parseArgs, parseTokenList, openModel, evaluateDistributions, closeAll } from "./llama_cpp_common.mjs";

const usage = "usage: node llama_cpp_logprobs.mjs ORACLE_DIR MODEL.gguf --tokens 1,2,3 --out OUT.f32 [--threads N] [--json META.json] [--verbose]";
let args;
try {
  args = parseArgs(process.argv.slice(2), {
    positional: ["oracleDir", "model"],
    options: { "--tokens": "string", "--out": "string", "--threads": "int", "--json": "string", "--verbose": "flag" },
  });
  if (!args.tokens || !args.out) throw new Error("--tokens and --out are required");
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}

const tokens = parseTokenList(args.tokens, "--tokens");
if (tokens.length === 0) { console.error("--tokens is empty"); process.exit(2); }
// One thread by default: results are bitwise the same for 1 and 2 threads, and on a small shared machine
// ggml's spinning barriers make 2 threads 10-50x slower whenever another process competes for a core.
const threads = args.threads ?? 1;

let handles = {};
try {
  handles = await openModel({ oracleDir: args.oracleDir, modelPath: args.model, contextSize: tokens.length, threads, verbose: !!args.verbose });
  const { context, sequence, loadMs } = handles;
  let nVocab = 0;
  let out = null;
  const { evalMs } = await evaluateDistributions(sequence, tokens, null, (i, p) => {
    if (out === null) {
      nVocab = p.size;
      for (const t of tokens) if (t >= nVocab) throw new Error(`token ${t} is outside the vocabulary (${nVocab})`);
      out = new Float32Array(tokens.length * nVocab);
    }
    // The whole vocabulary must be there: a shorter list would mean a sampler (top-k, top-p, ...) truncated it.
    if (p.size !== nVocab) throw new Error(`position ${i}: ${p.size} probabilities, expected the whole vocabulary (${nVocab})`);
    const row = out.subarray(i * nVocab, (i + 1) * nVocab);
    row.fill(Number.NaN);
    for (const [tok, prob] of p) {
      if (!(tok >= 0 && tok < nVocab)) throw new Error(`position ${i}: token id ${tok} out of range`);
      row[tok] = Math.log(prob); // computed in double from the float32 p, then rounded to float32
    }
    if (row.some(Number.isNaN)) throw new Error(`position ${i}: some token ids are missing or probabilities are NaN`);
  });
  // Float32Array uses the machine's byte order; node-llama-cpp's prebuilt binaries are for little-endian CPUs.
  writeFileSync(args.out, new Uint8Array(out.buffer));
  const meta = {
    n_tokens: tokens.length, n_vocab: nVocab, context_size: context.contextSize, threads,
    load_ms: Math.round(loadMs * 10) / 10, eval_ms: Math.round(evalMs * 10) / 10,
  };
  if (args.json) writeFileSync(args.json, JSON.stringify(meta) + "\n");
  console.log(JSON.stringify(meta));
  await closeAll(handles);
} catch (e) {
  console.error(`llama_cpp_logprobs: ${e?.message ?? e}`);
  try { await closeAll(handles); } catch {}
  process.exit(1);
}
