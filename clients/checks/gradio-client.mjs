// Drives a Gradio app with the official @gradio/client: connect, view_api,
// predict with an uploaded WAV (a local path and a Buffer), submit with its
// status, log and data events, a generator, and a cancelled call.
// Usage: node checks/gradio-client.mjs APP_URL PROMPT_WAV_PATH
// The app holds the call whose text is "cancel me" until it is cancelled.
import { Client, handle_file } from "@gradio/client";
import { wavSeconds } from "./wav.mjs";
import { readFile } from "node:fs/promises";

const [url, wavPath] = process.argv.slice(2);
const out = {};

async function download(file) {
  const r = await fetch(file.url);
  const buf = new Uint8Array(await r.arrayBuffer());
  return { status: r.status, type: r.headers.get("content-type"), seconds: wavSeconds(buf) };
}

const client = await Client.connect(url, { events: ["data", "status", "log"] });
out.root = client.config.root;
out.protocol = client.config.protocol;
out.api_prefix = client.api_prefix;

const api = await client.view_api();
out.endpoints = Object.fromEntries(
  Object.entries(api.named_endpoints).map(([name, info]) => [
    name,
    {
      parameters: info.parameters.map((p) => [p.parameter_name, p.component, p.parameter_has_default]),
      returns: info.returns.map((r) => r.component),
      generator: info.type.generator,
    },
  ]),
);

// predict with a local path: the client uploads it through /upload.
const r1 = await client.predict("/generate_audio", {
  text: "Hello from the cloned voice.",
  prompt_audio: handle_file(wavPath),
  mode: "zero-shot",
  speed: 1,
});
out.predict = { file: r1.data[0], download: await download(r1.data[0]) };

// predict with a Buffer and positional data.
const r2 = await client.predict("/generate_audio", [
  "Twice as fast",
  handle_file(await readFile(wavPath)),
  "instruct",
  2,
]);
out.predictBuffer = { file: r2.data[0], download: await download(r2.data[0]) };

// submit: the events a UI would show.
out.submit = [];
for await (const ev of client.submit("/generate_audio", {
  text: "Progress please",
  prompt_audio: handle_file(wavPath),
  mode: "cross-lingual",
  speed: 1,
})) {
  if (ev.type === "status") {
    out.submit.push({ type: "status", stage: ev.stage, original_msg: ev.original_msg ?? null, position: ev.position ?? null, progress: ev.progress_data ?? null });
    if (ev.stage === "complete" || ev.stage === "error") break;
  } else if (ev.type === "log") {
    out.submit.push({ type: "log", level: ev.level, log: ev.log });
  } else if (ev.type === "data") {
    out.submit.push({ type: "data", path: ev.data[0]?.path ?? null });
  }
}

// a generator: every partial output arrives as data.
out.generator = [];
for await (const ev of client.submit("/normalize_text", { text: "One Two Three" })) {
  if (ev.type === "data") out.generator.push(ev.data[0]);
  if (ev.type === "status" && (ev.stage === "complete" || ev.stage === "error")) break;
}

// an error the app raises with gr.Error reaches predict as an Error.
try {
  await client.predict("/generate_audio", { text: "x", prompt_audio: handle_file(wavPath), mode: "whisper", speed: 1 });
  out.badMode = "accepted";
} catch (e) {
  out.badMode = e.message;
}

// cancel a call once it has started.
out.cancel = [];
const job = client.submit("/generate_audio", { text: "cancel me", prompt_audio: handle_file(wavPath), mode: "zero-shot", speed: 1 });
const deadline = setTimeout(() => job.return(), 20000);
for await (const ev of job) {
  if (ev.type !== "status") continue;
  out.cancel.push(ev.stage + (ev.original_msg ? ":" + ev.original_msg : "") + (ev.message ? " " + ev.message : ""));
  if (ev.original_msg === "process_starts") {
    out.cancelEventID = job.event_id();
    await job.cancel();
  }
  if (ev.stage === "complete" || ev.stage === "error") break;
}
clearTimeout(deadline);

// the client reopens its stream for the next call.
const r3 = await client.predict("/normalize_text", ["After The Cancel"]);
out.afterCancel = r3.data[0];
client.close();
console.log(JSON.stringify(out));
process.exit(0);
