// Runs a job model of tollgate's predictions API with the official
// Replicate client, as a ComfyUI-backed model is used.
// Usage: node checks/replicate-comfyui.mjs BASE_URL TOKEN MODEL INPUT_JSON
// String values "file:PATH" of INPUT_JSON are sent as Buffers (the client
// uploads them to /v1/files). Prints {output, downloads} (each output URL
// fetched without credentials) or {error, detail}.
import { readFile } from "node:fs/promises";
import Replicate from "replicate";

const [baseUrl, auth, model, inputJSON] = process.argv.slice(2);
const replicate = new Replicate({ auth, baseUrl, useFileOutput: false });

async function main() {
  const input = JSON.parse(inputJSON);
  for (const [k, v] of Object.entries(input)) {
    if (typeof v === "string" && v.startsWith("file:")) input[k] = await readFile(v.slice(5));
  }
  try {
    const output = await replicate.run(model, { input });
    const urls = (Array.isArray(output) ? output : [output]).map(String);
    const downloads = [];
    for (const url of urls) {
      const res = await fetch(url); // no Authorization header
      const body = new Uint8Array(await res.arrayBuffer());
      downloads.push({ status: res.status, contentType: res.headers.get("content-type"), bytes: body.length });
    }
    return { output: urls, downloads };
  } catch (err) {
    return { error: err.response?.status ?? "failed", detail: String(err.message) };
  }
}

console.log(JSON.stringify(await main()));
