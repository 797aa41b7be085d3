// Drives CosyVoice's webui (webui.py, as served for Fun-CosyVoice3) with
// the official @gradio/client: 3 s voice cloning (mode 3s极速复刻) of a
// prompt WAV, by the endpoint's own parameter names.
// Usage: node checks/gradio-cosyvoice.mjs APP_URL API_KEY|- PROMPT_WAV_PATH TEXT
// Prints {root, parameters, events, file, download} as JSON: the root the
// client resolved, /generate_audio's parameter names from view_api, the
// status stages and logs seen, the output FileData and the download of
// its url (status, content type and seconds of WAV).
import { Client, handle_file } from "@gradio/client";
import { wavSeconds } from "./wav.mjs";

const [url, key, wavPath, text] = process.argv.slice(2);
const headers = key && key !== "-" ? { Authorization: `Bearer ${key}` } : {};

const client = await Client.connect(url, { headers, events: ["data", "status", "log"] });
const api = await client.view_api();
const out = {
  root: client.config.root,
  parameters: (api.named_endpoints["/generate_audio"]?.parameters ?? []).map((p) => p.parameter_name),
  events: [],
};
for await (const ev of client.submit("/generate_audio", {
  tts_text: text,
  mode_checkbox_group: "3s极速复刻",
  prompt_text: "希望你以后能够做的比我还好呦。",
  prompt_wav_upload: handle_file(wavPath),
  seed: 0,
  speed: 1,
})) {
  if (ev.type === "status") {
    out.events.push(ev.stage + (ev.original_msg ? ":" + ev.original_msg : ""));
    if (ev.stage === "complete" || ev.stage === "error") {
      if (ev.stage === "error") out.error = ev.message ?? null;
      break;
    }
  } else if (ev.type === "log") {
    out.events.push("log:" + ev.level + ":" + ev.log);
  } else if (ev.type === "data") {
    out.file = ev.data[0];
  }
}
if (out.file) {
  const r = await fetch(out.file.url, { headers });
  const buf = new Uint8Array(await r.arrayBuffer());
  out.download = { status: r.status, type: r.headers.get("content-type"), seconds: wavSeconds(buf) };
}
client.close();
console.log(JSON.stringify(out));
process.exit(0);
