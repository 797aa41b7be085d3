// Drives tollgate's predictions API with the official Replicate client.
// Usage: node checks/replicate.mjs MODE BASE_URL TOKEN [ARGS...]
//   run MODEL PROMPT          replicate.run, then download each output URL
//                             without credentials
//   create-wait MODEL PROMPT  create, then wait, noting every status seen
//   create MODEL PROMPT       create only
//   run-audio MODEL INPUT_JSON  replicate.run with the input (a JSON object
//                             whose "prompt" names a WAV file, sent as a
//                             Buffer), then download the output URL
//                             without credentials and measure its WAV
//   run-file MODEL            replicate.run with a PNG Buffer as input
//                             "photo" (the client uploads it to /v1/files)
//   create-hook MODEL PROMPT URL  create with a webhook for completed
//   verify-hook FILE          fetch the webhook secret and verify the
//                             delivery in FILE ({headers, body}) with the
//                             standardwebhooks package
//   cancel ID                 cancel a prediction
//   get ID                    get a prediction
//   list                      every page of the caller's predictions
// Each mode prints one JSON object; API errors print {"error": status}.
import { readFile } from "node:fs/promises";
import Replicate from "replicate";
import { Webhook } from "standardwebhooks";

const [mode, baseUrl, auth, ...args] = process.argv.slice(2);
const replicate = new Replicate({ auth, baseUrl, useFileOutput: false });

async function download(url) {
  const res = await fetch(url); // no Authorization header
  const body = new Uint8Array(await res.arrayBuffer());
  return {
    status: res.status,
    contentType: res.headers.get("content-type"),
    nosniff: res.headers.get("x-content-type-options"),
    bytes: body.length,
    png: body[1] === 0x50 && body[2] === 0x4e && body[3] === 0x47,
  };
}

async function main() {
  switch (mode) {
    case "run": {
      const [model, prompt] = args;
      const output = await replicate.run(model, { input: { prompt, size: 64 } });
      const urls = (Array.isArray(output) ? output : [output]).map(String);
      return { output: urls, downloads: await Promise.all(urls.map(download)) };
    }
    case "run-audio": {
      const input = JSON.parse(args[1]);
      input.prompt = await readFile(input.prompt);
      const output = String(await replicate.run(args[0], { input }));
      const res = await fetch(output); // no Authorization header
      const buf = new Uint8Array(await res.arrayBuffer());
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      const tag = (o) => String.fromCharCode(...buf.subarray(o, o + 4));
      let seconds = -1, byteRate = 0;
      if (tag(0) === "RIFF" && tag(8) === "WAVE") {
        for (let off = 12; off + 8 <= buf.length; ) {
          const size = view.getUint32(off + 4, true);
          if (tag(off) === "fmt ") byteRate = view.getUint32(off + 16, true);
          if (tag(off) === "data") { seconds = size / byteRate; break; }
          off += 8 + size + (size % 2);
        }
      }
      return { output, status: res.status, contentType: res.headers.get("content-type"), seconds };
    }
    case "run-file": {
      // A 1x1 PNG.
      const png = Buffer.from(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/qO3u1QAAAABJRU5ErkJggg==",
        "base64",
      );
      const output = await replicate.run(args[0], { input: { photo: png } });
      return { output, sent: png.length };
    }
    case "create-wait": {
      const [model, prompt] = args;
      const created = await replicate.predictions.create({ model, input: { prompt } });
      const statuses = [created.status];
      const done = await replicate.wait(created, { interval: 50 }, (p) => {
        if (statuses[statuses.length - 1] !== p.status) statuses.push(p.status);
        return false;
      });
      if (statuses[statuses.length - 1] !== done.status) statuses.push(done.status);
      return { id: done.id, statuses, metrics: done.metrics, output: done.output };
    }
    case "create": {
      const [model, prompt] = args;
      return await replicate.predictions.create({ model, input: { prompt } });
    }
    case "create-hook": {
      const [model, prompt, webhook] = args;
      return await replicate.predictions.create({
        model, input: { prompt }, webhook, webhook_events_filter: ["completed"],
      });
    }
    case "verify-hook": {
      const { key } = await replicate.webhooks.default.secret.get();
      const { headers, body } = JSON.parse(await readFile(args[0], "utf8"));
      let verified;
      try {
        verified = new Webhook(key).verify(body, headers);
      } catch (err) {
        return { secretPrefix: key.slice(0, 6), refused: err.constructor.name };
      }
      let tampered;
      try {
        new Webhook(key).verify(body.replace("succeeded", "failed"), headers);
        tampered = "accepted";
      } catch (err) {
        tampered = err.constructor.name;
      }
      return { secretPrefix: key.slice(0, 6), id: verified.id, status: verified.status, tampered };
    }
    case "cancel":
      return await replicate.predictions.cancel(args[0]);
    case "get":
      return await replicate.predictions.get(args[0]);
    case "list": {
      const ids = [];
      for await (const page of replicate.paginate(replicate.predictions.list)) {
        ids.push(...page.map((p) => p.id));
      }
      return { ids };
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

try {
  console.log(JSON.stringify(await main()));
} catch (err) {
  if (err.response) {
    console.log(JSON.stringify({ error: err.response.status }));
  } else {
    throw err;
  }
}
