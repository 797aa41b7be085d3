// Uses a Gradio app's own page through a tollgate route of type gradio in
// Chromium, logged in with the session cookie as a person would be: the
// route sends the browser to /login first; after logging in, the page's
// own upload and queue/join calls (which tollgate's script gives the CSRF
// token) produce the audio. A form posted to the route from another
// origin, and one posted from the page itself without the token, are
// refused.
// Usage: node checks/gradio-ui.mjs CHROMIUM BASE_URL ROUTE_PATH EVIL_URL USER PASSWORD PROMPT_WAV SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [executablePath, base, route, evil, user, password, wavPath, shots] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "tollgate-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1000, height: 700 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const out = { calls: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);
  page.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    if (r.request().method() === "POST" && path.startsWith(route)) {
      out.calls.push({ path: path.slice(route.length), status: r.status(), csrf: !!r.request().headers()["x-csrf-token"] });
    }
  });

  // Not logged in: the route's page sends the browser to the login form,
  // which brings it back.
  await page.goto(base + route);
  const at = new URL(page.url());
  out.loginRedirect = at.pathname + at.search;
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(password);
  await Promise.all([page.waitForURL(base + route), page.getByRole("button", { name: "Log in" }).click()]);
  out.back = new URL(page.url()).pathname;
  out.metaToken = await page.locator('meta[name="csrf-token"]').getAttribute("content");

  await page.fill("#text", "Spoken through the gateway");
  await page.setInputFiles("#prompt", wavPath);
  await page.click("#generate");
  await page.waitForFunction(() => /^(complete|error|upload failed|join failed)/.test(document.getElementById("status").textContent));
  out.status = await page.locator("#status").textContent();
  const audio = await page.evaluate(async () => {
    const src = document.getElementById("output").src;
    const r = src ? await fetch(src) : null;
    return { src, status: r ? r.status : 0, bytes: r ? (await r.arrayBuffer()).byteLength : 0 };
  });
  Object.assign(out, { audioSrc: audio.src, audioStatus: audio.status, audioBytes: audio.bytes });
  await page.screenshot({ path: join(shots, "gradio-ui.png"), fullPage: true });

  // The page itself posts a form without the token: refused.
  const [noToken] = await Promise.all([
    page.waitForResponse((r) => r.url() === base + route + "gradio_api/queue/join"),
    page.evaluate((action) => {
      const f = document.createElement("form");
      f.method = "post";
      f.action = action;
      f.innerHTML = '<input name="data" value="[]">';
      document.body.append(f);
      setTimeout(() => f.submit(), 0);
    }, base + route + "gradio_api/queue/join"),
  ]);
  out.sameOriginWithoutToken = noToken.status();
  await page.waitForURL(base + route + "gradio_api/queue/join");

  // Another origin posts a form with the right token: refused.
  const [cross] = await Promise.all([
    page.waitForResponse((r) => r.url() === base + route + "gradio_api/upload"),
    page.goto(`${evil}/?target=${encodeURIComponent(base + route + "gradio_api/upload")}&token=${encodeURIComponent(out.metaToken)}`, { waitUntil: "commit" }),
  ]);
  out.crossOrigin = cross.status();
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
