// Drives tollgate with the official OpenAI SDK: a plain completion, a
// stream, the model list, and an error the SDK must classify.
// Usage: node checks/openai.mjs BASE_URL API_KEY
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};

const r = await client.chat.completions.create({
  model: "demo-echo",
  messages: [{ role: "user", content: "hello through the gateway" }],
});
out.plain = r.choices[0].message.content;
out.usage = r.usage;

let streamed = "";
const stream = await client.chat.completions.create({
  model: "demo-echo",
  stream: true,
  messages: [{ role: "user", content: "one two three" }],
});
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
}
out.streamed = streamed;

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

try {
  await new OpenAI({ baseURL, apiKey: "tg_wrong_key", maxRetries: 0 }).chat.completions.create({
    model: "demo-echo",
    messages: [{ role: "user", content: "x" }],
  });
  out.badKey = "accepted";
} catch (e) {
  out.badKey = `${e.constructor.name} ${e.status} ${e.code}`;
}
console.log(JSON.stringify(out));
