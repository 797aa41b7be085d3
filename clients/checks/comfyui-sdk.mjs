// Drives a ComfyUI server with the official @saintno/comfyui-sdk: connect,
// upload an image, run a DDColor workflow with CallWrapper and
// PromptBuilder (progress, previews, the output image, its download),
// then the queue, the history, a queue delete and an interrupt.
// Usage: node checks/comfyui-sdk.mjs BASE_URL IMAGE_PATH [TOKEN]
// (TOKEN: a bearer token or API key, sent on every call and the socket)
// Prompts whose SaveImage prefix starts with "slow" must run until
// interrupted (the test's server makes them wait).
import { readFile } from "node:fs/promises";
import { ComfyApi, CallWrapper, PromptBuilder } from "@saintno/comfyui-sdk";

const [baseURL, imagePath, token] = process.argv.slice(2);
const auth = token ? { headers: { Authorization: `Bearer ${token}` } } : {};
const out = {};
const step = (what) => console.error(`step: ${what}`);
const api = new ComfyApi(baseURL, "sdk-check-client", token ? { credentials: { type: "bearer_token", token } } : undefined);
const connected = new Promise((resolve) => api.on("status", (e) => resolve(e.detail)));
api.init(2, 200);
api.on("log", (e) => process.env.SDK_DEBUG && console.error("log", e.detail.fnName, e.detail.message));
step("init");
await api.waitForReady();
step("ready");
const status = await connected;
step("connected");
out.sid = status.sid;
out.queueRemaining = status.status.exec_info.queue_remaining;

const upload = await api.uploadImage(await readFile(imagePath), "old.png", { subfolder: "alice" });
if (!upload) throw new Error("upload failed");
out.upload = upload.info;

const workflow = (prefix, size) => ({
  "1": { class_type: "LoadImage", inputs: { image: "" } },
  "2": { class_type: "DDColor_Colorize", inputs: { image: ["1", 0], model_input_size: size, checkpoint: "ddcolor_modelscope.pth" } },
  "3": { class_type: "SaveImage", inputs: { images: ["2", 0], filename_prefix: prefix } },
});
const build = (prefix, size) =>
  new PromptBuilder(workflow(prefix, size), ["image"], ["images"])
    .setInputNode("image", "1.inputs.image")
    .setOutputNode("images", "3")
    .input("image", `${upload.info.subfolder}/${upload.info.filename}`);

step("uploaded");
// 1. A DDColor run to completion. CallWrapper subscribes to a prompt's
// events only once POST /prompt has answered, so progress and previews
// are also counted on the api, subscribed before the prompt is queued.
const events = [];
let previews = 0;
api.on("progress", (e) => events.push(e.detail));
api.on("b_preview", () => previews++);
let pendingId = null;
const result = await new CallWrapper(api, build("alice/colorized", 512))
  .onPending((id) => (pendingId = id))
  .onFailed((e) => (out.runError = `${e.name}: ${e.message}`))
  .run();
if (!result) throw new Error(`run failed: ${out.runError}`);
out.started = pendingId;
out.progress = events.filter((p) => p.prompt_id === pendingId).map((p) => `${p.node}:${p.value}/${p.max}`);
out.previews = previews;
const image = result.images.images[0];
out.output = image;
out.imageURL = api.getPathImage(image);
const res = await fetch(out.imageURL, auth);
const bytes = new Uint8Array(await res.arrayBuffer());
const dv = new DataView(bytes.buffer);
out.download = {
  status: res.status,
  contentType: res.headers.get("content-type"),
  png: bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47,
  width: dv.getUint32(16),
  height: dv.getUint32(20),
};
const hist = await api.getHistory(pendingId);
out.historyCompleted = hist?.status?.completed === true;
out.historyOutputs = Object.keys(hist?.outputs ?? {});

step("ran");
// 2. The same workflow again is cached: the SDK gets it from the history.
const again = await new CallWrapper(api, build("alice/colorized", 512)).run();
out.cachedFilename = again ? again.images.images[0].filename : null;

step("cached");
// 3. A slow prompt runs; a second waits in the queue and is deleted.
const slowStarted = new Promise((resolve) => {
  const off = api.on("progress", () => {
    off();
    resolve();
  });
});
const interrupted = new Promise((resolve) => api.on("execution_interrupted", (e) => resolve(e.detail)));
const slow = await api.appendPrompt(build("slow/a", 640).workflow);
await slowStarted;
const pending = await api.appendPrompt(build("slow/b", 672).workflow);
let queue = await api.getQueue();
out.queueRunning = queue.queue_running.map((item) => item[1]).includes(slow.prompt_id);
out.pendingListed = queue.queue_pending.some((item) => item[1] === pending.prompt_id);
await api.manageQueue({ delete: [pending.prompt_id] });
queue = await api.getQueue();
out.pendingAfterDelete = queue.queue_pending.some((item) => item[1] === pending.prompt_id);

step("deleted");
// 4. The interrupt ends the slow prompt.
await api.interrupt();
const stop = await interrupted;
out.interrupted = stop.prompt_id === slow.prompt_id ? stop.node_type : `other prompt ${stop.prompt_id}`;
const slowHistory = await api.getHistory(slow.prompt_id);
out.slowStatus = slowHistory?.status?.status_str;
const histories = await api.getHistories(10);
out.historyCount = Object.keys(histories).length;
await api.clearHistory({ clear: true });
out.historyAfterClear = Object.keys(await api.getHistories(10)).length;

api.destroy();
console.log(JSON.stringify(out));
process.exit(0);
