// Opens pages in Chromium and waits on each until its own script sets the
// title to "done" (after its requests settled); prints each page's final
// title and any page error. tollgate's csrf.js tests use it: the servers
// they start record which requests carried the CSRF token.
// Usage: node checks/csrf-pages.mjs CHROMIUM URL...
import { chromium } from "playwright-core";

const [executablePath, ...urls] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu"] });
const out = [];
try {
  for (const url of urls) {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    await page.goto(url);
    await page.waitForFunction(() => document.title === "done", null, { timeout: 20000 }).catch(() => {});
    out.push({ url, title: await page.title(), errors });
    await page.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
