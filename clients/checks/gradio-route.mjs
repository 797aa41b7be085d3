// Drives a Gradio app behind a tollgate route of type gradio with the
// official @gradio/client, authenticated by an API key.
// Usage: node checks/gradio-route.mjs ROUTE_URL API_KEY PROMPT_WAV_PATH
// Prints {root, session, file, download, events} as JSON: the root the
// client resolved, its session_hash, the output FileData of one predict,
// the download of its url with the same key, and the status stages seen.
import { Client, handle_file } from "@gradio/client";
import { wavSeconds } from "./wav.mjs";

const [url, key, wavPath] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${key}` };

const client = await Client.connect(url, { headers, events: ["data", "status", "log"] });
const out = { root: client.config.root, session: client.session_hash, events: [] };
for await (const ev of client.submit("/generate_audio", {
  text: "Hello through the gateway.",
  prompt_audio: handle_file(wavPath),
  mode: "zero-shot",
  speed: 1,
})) {
  if (ev.type === "status") {
    out.events.push(ev.stage + (ev.original_msg ? ":" + ev.original_msg : ""));
    if (ev.stage === "complete" || ev.stage === "error") {
      if (ev.stage === "error") out.error = ev.message ?? null;
      break;
    }
  } else if (ev.type === "log") {
    out.events.push("log:" + ev.log);
  } else if (ev.type === "data") {
    out.file = ev.data[0];
  }
}
if (out.file) {
  const r = await fetch(out.file.url, { headers });
  const buf = new Uint8Array(await r.arrayBuffer());
  out.download = { status: r.status, seconds: wavSeconds(buf) };
}
client.close();
console.log(JSON.stringify(out));
process.exit(0);
