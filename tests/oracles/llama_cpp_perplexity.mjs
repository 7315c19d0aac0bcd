// llama.cpp oracle: perplexity the way llama.cpp's `llama-perplexity` computes it (default mode, no
// --ppl-stride), evaluated with llama.cpp (node-llama-cpp@3.21.1 = llama.cpp v0.4.0) on the CPU.
//
// Usage: node llama_cpp_perplexity.mjs ORACLE_DIR MODEL.gguf --tokens-file TOKENS.txt --ctx N --out OUT.json
//                                      [--chunks K] [--threads N] [--verbose]
//   --tokens-file  token ids (comma and/or whitespace separated), used verbatim as llama-perplexity's
//                  `tokens` vector. llama-perplexity gets it from common_tokenize(text, add_special=true),
//                  i.e. with ONE BOS in front when the vocabulary adds BOS: include it in the file if you want
//                  the very same windows as `llama-perplexity -f text`.
//   --ctx N        window length (llama-perplexity's -c; its default is 512). N >= 4.
//   --chunks K     use only the first K windows (llama-perplexity's --chunks); default: all.
//   --out          JSON: {ppl, ppl_err, n_scored, nll_sum, nll2_sum, n_chunks, n_ctx, add_bos, n_vocab,
//                  chunk_ppl (running exp(nll/count) after each window, what llama-perplexity prints),
//                  load_ms, eval_ms, threads}. The same JSON is printed on stdout.
//
// The method (tools/perplexity/perplexity.cpp, perplexity()):
//   * needs at least 2*N tokens; windows are the non-overlapping [c*N, (c+1)*N), c < floor(n_tokens/N)
//     (the remainder is dropped);
//   * each window is decoded alone from an empty KV cache at positions 0..N-1; when the vocabulary adds BOS
//     (tokenizer.ggml.add_bos_token, llama_vocab_get_add_bos) the window's FIRST token is REPLACED by BOS;
//   * outputs are requested for positions first = N/2 (integer division) .. N-1; the output at position
//     j in [first, N-2] scores the window's token j+1, i.e. N-1-first tokens per window;
//   * v = -log P(token), nll += v, nll2 += v*v (doubles); count = scored tokens;
//     PPL = exp(nll/count), and  PPL_err = PPL * sqrt((nll2/count - (nll/count)^2) / (count-1))
//     (llama-perplexity prints "PPL = %.4lf +/- %.5lf"; when the variance is not > 0 it prints an error and no
//     estimate: ppl_err is null then).
// Difference from llama-perplexity itself: it computes v from the float32 logits with log-softmax (float max,
// double sum of expf); here v = -log(p) with p the float32 softmax that node-llama-cpp returns (see
// llama_cpp_logprobs.mjs). The two agree to ~1e-6 relative per token. llama-perplexity also packs
// n_batch/N windows into one llama_decode as separate sequences (default n_batch 2048: 4 windows of 512);
// here each window is its own decode, which can change float rounding in the matmuls (not the math).
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs, parseTokenList, openModel, evaluateDistributions, closeAll } from "./llama_cpp_common.mjs";

const usage = "usage: node llama_cpp_perplexity.mjs ORACLE_DIR MODEL.gguf --tokens-file TOKENS.txt --ctx N --out OUT.json [--chunks K] [--threads N] [--verbose]";
let args;
try {
  args = parseArgs(process.argv.slice(2), {
    positional: ["oracleDir", "model"],
    options: { "--tokens-file": "string", "--ctx": "int", "--out": "string", "--chunks": "int", "--threads": "int", "--verbose": "flag" },
  });
  if (!args["tokens-file"] || args.ctx === undefined || !args.out) throw new Error("--tokens-file, --ctx and --out are required");
  if (args.ctx < 4) throw new Error("--ctx must be >= 4");
} catch (e) {
  console.error(`${e.message}\n${usage}`);
  process.exit(2);
}

const tokens = parseTokenList(readFileSync(args["tokens-file"], "utf8"), "--tokens-file");
const nCtx = args.ctx;
const threads = args.threads ?? 1; // see llama_cpp_logprobs.mjs
if (tokens.length < 2 * nCtx) {
  // Same refusal as llama-perplexity.
  console.error(`llama_cpp_perplexity: you need at least ${2 * nCtx} tokens to evaluate perplexity with a context of ${nCtx} (got ${tokens.length})`);
  process.exit(1);
}
const nChunkMax = Math.floor(tokens.length / nCtx);
const nChunk = args.chunks === undefined || args.chunks < 0 ? nChunkMax : Math.min(args.chunks, nChunkMax);

let handles = {};
try {
  handles = await openModel({ oracleDir: args.oracleDir, modelPath: args.model, contextSize: nCtx, threads, verbose: !!args.verbose });
  const { model, context, sequence, loadMs } = handles;
  const addBos = model.tokens.shouldPrependBosToken;
  const bos = model.tokens.bos;
  if (model.tokens.shouldAppendEosToken) throw new Error("the vocabulary adds EOS; llama-perplexity asserts it does not");
  if (addBos && bos == null) throw new Error("the vocabulary adds BOS but has no BOS token");

  const first = Math.floor(nCtx / 2);
  const wanted = [];
  for (let j = first; j < nCtx; ++j) wanted.push(j); // llama.cpp marks batch.logits[] for pos >= first
  let nll = 0, nll2 = 0, count = 0, nVocab = 0, evalMs = 0;
  const chunkPpl = [];
  for (let c = 0; c < nChunk; ++c) {
    const window = tokens.slice(c * nCtx, (c + 1) * nCtx);
    if (addBos) window[0] = bos;
    const res = await evaluateDistributions(sequence, window, wanted, (j, p) => {
      if (nVocab === 0) nVocab = p.size;
      if (p.size !== nVocab) throw new Error(`window ${c} position ${j}: ${p.size} probabilities, expected ${nVocab}`);
      if (j === nCtx - 1) return; // computed (as in llama.cpp) but not scored
      const next = window[j + 1];
      const prob = p.get(next);
      if (prob === undefined) throw new Error(`window ${c} position ${j}: token ${next} is not in the vocabulary`);
      const v = -Math.log(prob);
      nll += v;
      nll2 += v * v;
    });
    evalMs += res.evalMs;
    count += nCtx - first - 1;
    chunkPpl.push(Math.exp(nll / count));
  }
  const mean = nll / count;
  const ppl = Math.exp(mean);
  const variance = nll2 / count - mean * mean;
  const pplErr = variance > 0 ? Math.sqrt(variance / (count - 1)) * ppl : null;
  const result = {
    ppl, ppl_err: pplErr, n_scored: count, nll_sum: nll, nll2_sum: nll2,
    n_chunks: nChunk, n_ctx: nCtx, add_bos: addBos, n_vocab: nVocab, chunk_ppl: chunkPpl,
    context_size: context.contextSize, threads,
    load_ms: Math.round(loadMs * 10) / 10, eval_ms: Math.round(evalMs * 10) / 10,
  };
  writeFileSync(args.out, JSON.stringify(result, null, 1) + "\n");
  console.log(JSON.stringify(result));
  if (pplErr === null) console.error("llama_cpp_perplexity: Unexpected negative standard deviation of log(prob)");
  await closeAll(handles);
} catch (e) {
  console.error(`llama_cpp_perplexity: ${e?.message ?? e}`);
  try { await closeAll(handles); } catch {}
  process.exit(1);
}
