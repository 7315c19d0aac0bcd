// Compares `bitnet inspect --json --full` output with what @huggingface/gguf (an independent GGUF parser)
// reads from the same file: every metadata key, type and value, and the tensor table.
// Usage: node gguf_compare.mjs ORACLE_DIR FILE.gguf OURS.json   (exit 0: identical, 1: differences)
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [oracleDir, file, oursPath] = process.argv.slice(2);
const { gguf } = await import(pathToFileURL(`${oracleDir}/node_modules/@huggingface/gguf/dist/index.mjs`).href);
const theirs = await gguf(file, { allowLocalFile: true, typedMetadata: true });
const ours = JSON.parse(readFileSync(oursPath, "utf8"));

const typeNames = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
const problems = [];
// @huggingface/gguf decodes strings with TextDecoder, which drops a leading U+FEFF (byte-order mark); the
// LLaMA-2 vocabulary has the token "\uFEFF", which it therefore reads as "". Count that as agreement.
const stripBom = (s) => (typeof s === "string" && s.startsWith("\uFEFF") ? s.slice(1) : s);
const same = (a, b) => (typeof a === "bigint" ? Number(a) === Number(b) : a === b || a === stripBom(b));

function compareArray(key, theirValues, theirSub, ourArr) {
  if (ourArr.element_type !== typeNames[theirSub]) {
    problems.push(`${key}: element type ${ourArr.element_type} vs ${typeNames[theirSub]}`);
    return;
  }
  if (ourArr.count !== theirValues.length) {
    problems.push(`${key}: ${ourArr.count} elements vs ${theirValues.length}`);
    return;
  }
  for (let i = 0; i < theirValues.length; ++i) {
    const t = theirValues[i], o = ourArr.values[i];
    if (Array.isArray(t)) {
      // Nested arrays: @huggingface/gguf returns plain values; compare element-wise.
      if (!Array.isArray(o.values) || o.values.length !== t.length || t.some((x, j) => !same(x, o.values[j]))) {
        problems.push(`${key}[${i}]: nested array differs`);
        return;
      }
    } else if (!same(t, o)) {
      problems.push(`${key}[${i}]: ${JSON.stringify(o)} vs ${String(t)}`);
      return;
    }
  }
}

const skip = new Set(["version", "tensor_count", "kv_count"]);
const theirKeys = Object.keys(theirs.typedMetadata).filter((k) => !skip.has(k));
const ourKeys = Object.keys(ours.metadata);
if (JSON.stringify(theirKeys) !== JSON.stringify(ourKeys))
  problems.push(`metadata keys differ:\n  ours:   ${ourKeys.join(",")}\n  theirs: ${theirKeys.join(",")}`);
if (!same(theirs.typedMetadata.version.value, ours.version)) problems.push(`version ${ours.version} vs ${theirs.typedMetadata.version.value}`);

for (const key of theirKeys) {
  const t = theirs.typedMetadata[key], o = ours.metadata[key];
  if (!o) continue;
  if (o.type !== typeNames[t.type]) {
    problems.push(`${key}: type ${o.type} vs ${typeNames[t.type]}`);
    continue;
  }
  if (o.type === "array") compareArray(key, t.value, t.subType, o.value);
  else if (!same(t.value, o.value)) problems.push(`${key}: ${JSON.stringify(o.value)} vs ${String(t.value)}`);
}

if (theirs.tensorInfos.length !== ours.tensors.length)
  problems.push(`tensor count ${ours.tensors.length} vs ${theirs.tensorInfos.length}`);
theirs.tensorInfos.forEach((t, i) => {
  const o = ours.tensors[i];
  if (!o) return;
  const shape = t.shape.map(Number);
  if (t.name !== o.name || t.dtype !== o.type_id || Number(t.offset) !== o.offset || JSON.stringify(shape) !== JSON.stringify(o.shape))
    problems.push(`tensor ${i}: ours ${o.name} ${JSON.stringify(o.shape)} type ${o.type_id} @${o.offset}; theirs ${t.name} ${JSON.stringify(shape)} type ${t.dtype} @${t.offset}`);
});
if (Number(theirs.tensorDataOffset) !== ours.data_offset && theirs.tensorInfos.length > 0)
  problems.push(`data offset ${ours.data_offset} vs ${theirs.tensorDataOffset}`);

if (problems.length) {
  console.error(`${file}: ${problems.length} differences\n${problems.slice(0, 20).join("\n")}`);
  process.exit(1);
}
console.log(`${file}: identical (${theirKeys.length} keys, ${theirs.tensorInfos.length} tensors)`);
