// The official `openai` npm client against a running `bitnet serve`, unchanged: chat and completions,
// streaming and not, usage, logprobs, models, and the client's own error classes for 400 and 401.
//
// Usage: node openai_client.mjs ORACLE_DIR BASE_URL API_KEY
//   ORACLE_DIR  where tests/oracles/install.sh put openai (node_modules/openai)
//   BASE_URL    e.g. http://127.0.0.1:8080/v1
// Prints one JSON object of what it saw (the Python driver compares it with `bitnet run`); exits 1 on a
// failed check, with the reason on stderr.
import { createRequire } from "node:module";
import path from "node:path";

const [oracleDir, baseURL, apiKey] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(oracleDir), "node_modules", "x.js"));
const OpenAI = require("openai");

function check(cond, what) {
  if (!cond) {
    console.error(`openai_client: ${what}`);
    process.exit(1);
  }
}

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const out = {};

// Models.
const models = [];
for await (const m of client.models.list()) models.push(m);
check(models.length === 1 && typeof models[0].id === "string", `models.list: ${JSON.stringify(models)}`);
out.model = models[0].id;

// Chat, whole and streamed: the same greedy text.
const messages = [{ role: "system", content: "You are a helpful assistant." },
                  { role: "user", content: "Who is Mr. Darcy?" }];
const chat = await client.chat.completions.create({ model: out.model, messages, max_tokens: 16, temperature: 0 });
check(chat.object === "chat.completion", `chat object ${chat.object}`);
check(chat.choices[0].message.role === "assistant", "chat role");
check(["stop", "length"].includes(chat.choices[0].finish_reason), `finish_reason ${chat.choices[0].finish_reason}`);
check(chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, "chat usage sums");
out.chat = chat.choices[0].message.content;
out.chat_usage = chat.usage;

const stream = await client.chat.completions.create({
  model: out.model, messages, max_completion_tokens: 16, temperature: 0, stream: true,
  stream_options: { include_usage: true },
});
let streamed = "", finish = null, usage = null, chunks = 0;
for await (const chunk of stream) {
  ++chunks;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(streamed === out.chat, `streamed chat ${JSON.stringify(streamed)} != ${JSON.stringify(out.chat)}`);
check(finish === chat.choices[0].finish_reason, `streamed finish_reason ${finish}`);
check(usage && usage.completion_tokens === chat.usage.completion_tokens, `stream usage ${JSON.stringify(usage)}`);
check(chunks >= 3, `only ${chunks} chunks`);

// Chat logprobs.
const lp = await client.chat.completions.create({
  model: out.model, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 3,
});
const content = lp.choices[0].logprobs.content;
check(content.length === lp.usage.completion_tokens, "one logprobs entry per token");
for (const e of content) {
  check(e.logprob <= 0 && e.top_logprobs.length === 3, `logprobs entry ${JSON.stringify(e)}`);
  check(Math.abs(e.logprob - e.top_logprobs[0].logprob) < 1e-4, "greedy takes the most likely token");
}

// Completions, whole and streamed.
const prompt = "It is a truth universally acknowledged, that";
const done = await client.completions.create({ model: out.model, prompt, max_tokens: 24, temperature: 0 });
check(done.object === "text_completion", `completion object ${done.object}`);
out.completion = done.choices[0].text;
out.completion_finish = done.choices[0].finish_reason;
out.completion_usage = done.usage;
const cs = await client.completions.create({ model: out.model, prompt, max_tokens: 24, temperature: 0, stream: true });
let ctext = "";
for await (const chunk of cs) for (const c of chunk.choices) ctext += c.text;
check(ctext === out.completion, `streamed completion ${JSON.stringify(ctext)} != ${JSON.stringify(out.completion)}`);

// Stop strings and a seeded sample (the same seed twice gives the same text).
const a = await client.completions.create({ model: out.model, prompt, max_tokens: 12, temperature: 0.9, seed: 42 });
const b = await client.completions.create({ model: out.model, prompt, max_tokens: 12, temperature: 0.9, seed: 42 });
check(a.choices[0].text === b.choices[0].text, "the same seed gave different text");

// Errors come back as the client's error classes, with the server's message and param.
try {
  await client.chat.completions.create({ model: out.model, messages, temperature: 7 });
  check(false, "temperature 7 was accepted");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${e?.constructor?.name}: ${e}`);
  check(e.status === 400 && e.param === "temperature", `400 error: status ${e.status} param ${e.param}`);
  out.bad_request = e.message;
}
const wrongKey = new OpenAI({ baseURL, apiKey: apiKey + "x", maxRetries: 0 });
try {
  await wrongKey.completions.create({ model: out.model, prompt, max_tokens: 1 });
  check(false, "a wrong key was accepted");
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${e?.constructor?.name}: ${e}`);
  check(e.status === 401, `401 error: status ${e.status}`);
}

console.log(JSON.stringify(out));
