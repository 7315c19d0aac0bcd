// node hf_tokenize.mjs TOKENIZER_JSON TEXT_FILE: Hugging Face `tokenizers` (npm @anush008/tokenizers, the Rust
// library's Node binding) encodes the file's text without special tokens and prints the ids as a JSON array.
// Exit 1 on any failure, 2 on a bad command line.
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

if (process.argv.length !== 4) {
  process.stderr.write("usage: node hf_tokenize.mjs TOKENIZER_JSON TEXT_FILE\n");
  process.exit(2);
}
// The package is installed beside this script's caller (install.sh DIR), found through NODE_PATH.
const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), "noop.js"));
try {
  const { Tokenizer } = require("@anush008/tokenizers");
  const tok = Tokenizer.fromFile(process.argv[2]);
  const text = fs.readFileSync(process.argv[3], "utf8");
  const enc = await tok.encode(text, null, { addSpecialTokens: false });
  process.stdout.write(JSON.stringify(Array.from(enc.getIds())) + "\n");
} catch (e) {
  process.stderr.write(`hf_tokenize: ${e.stack || e}\n`);
  process.exit(1);
}
