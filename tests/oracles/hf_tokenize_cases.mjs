// node hf_tokenize_cases.mjs TOKENIZER_JSON CASES.jsonl OUT.jsonl: Hugging Face `tokenizers` (npm
// @anush008/tokenizers 0.6.0 = the Rust library 0.22.2) on many texts at once. CASES.jsonl holds one JSON
// string per line; OUT.jsonl gets, per case, {"ids": [...], "text": decode(ids)}: encoded without the
// post-processor's tokens (addSpecialTokens false; added tokens in the text are still matched, as in HF)
// and decoded without skipping special tokens. Exit 1 on any failure, 2 on a bad command line.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

if (process.argv.length !== 5) {
  process.stderr.write("usage: node hf_tokenize_cases.mjs TOKENIZER_JSON CASES.jsonl OUT.jsonl\n");
  process.exit(2);
}
const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "noop.js"));
try {
  const { Tokenizer } = require("@anush008/tokenizers");
  const tok = Tokenizer.fromFile(process.argv[2]);
  const cases = fs.readFileSync(process.argv[3], "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
  const out = [];
  for (const text of cases) {
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const ids = Array.from(enc.getIds());
    out.push(JSON.stringify({ ids, text: await tok.decode(ids, false) }));
  }
  fs.writeFileSync(process.argv[4], out.join("\n") + "\n");
} catch (e) {
  process.stderr.write(`hf_tokenize_cases: ${e.stack || e}\n`);
  process.exit(1);
}
