// Uses a Gradio app's page in Chromium as a person would: type the text,
// choose the prompt WAV, press Generate and wait for the audio.
// Usage: node checks/gradio-page.mjs PAGE_URL PROMPT_WAV_PATH CHROMIUM_PATH
import { chromium } from "playwright-core";

const [url, wavPath, executablePath] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.fill("#text", "Spoken in the browser");
  await page.setInputFiles("#prompt", wavPath);
  await page.selectOption("#mode", "cross-lingual");
  await page.click("#generate");
  await page.waitForFunction(() => document.getElementById("status").textContent.match(/^(complete|error)/), null, { timeout: 30000 });
  const out = await page.evaluate(async () => {
    const src = document.getElementById("output").src;
    const r = src ? await fetch(src) : null;
    return {
      status: document.getElementById("status").textContent,
      src,
      audioStatus: r ? r.status : 0,
      audioBytes: r ? (await r.arrayBuffer()).byteLength : 0,
      root: window.gradio_config.root,
    };
  });
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
