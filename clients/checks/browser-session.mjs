// Drives tollgate's login in Chromium: the form, the /ui/ page, the
// session cookie's flags, a cross-origin form post and a same-origin call
// without the CSRF token (both refused), and logout.
// Usage: node checks/browser-session.mjs CHROMIUM BASE_URL EVIL_URL USER PASSWORD SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [executablePath, base, evil, user, password, shots] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "tollgate-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const out = {};
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);

  await page.goto(base + "/ui/");
  out.redirectedTo = new URL(page.url()).pathname;
  await page.screenshot({ path: join(shots, "login.png"), fullPage: true });

  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(password);
  await Promise.all([page.waitForURL(base + "/ui/"), page.getByRole("button", { name: "Log in" }).click()]);
  out.shownUser = await page.locator("#user").textContent();
  await page.screenshot({ path: join(shots, "ui.png"), fullPage: true });

  const cookie = (await context.cookies(base)).find((c) => c.name === "tollgate_session");
  out.cookie = cookie ? { httpOnly: cookie.httpOnly, sameSite: cookie.sameSite, secure: cookie.secure } : null;
  out.scriptSeesCookie = (await page.evaluate(() => document.cookie)).includes("tollgate_session");
  const csrf = await page.locator('meta[name="csrf-token"]').getAttribute("content");

  // Same origin: without the token refused, with it served.
  out.fetchWithoutToken = await page.evaluate(async () => (await fetch("/app/echo", { method: "POST", body: "x" })).status);
  out.fetchWithToken = await page.evaluate(
    async (token) => (await fetch("/app/echo", { method: "POST", body: "x", headers: { "X-CSRF-Token": token } })).status,
    csrf,
  );

  // Another origin posts a form (even with the right token) to a cookie
  // route and to /logout: both refused, and the session lives on.
  for (const [name, target] of [["crossOriginPost", "/app/echo"], ["crossOriginLogout", "/logout"]]) {
    const resp = page.waitForResponse((r) => r.url() === base + target);
    await page.goto(`${evil}/?target=${encodeURIComponent(base + target)}&token=${encodeURIComponent(csrf)}`);
    out[name] = (await resp).status();
  }
  await page.goto(base + "/ui/");
  out.stillLoggedIn = new URL(page.url()).pathname === "/ui/";

  await Promise.all([page.waitForURL(base + "/login"), page.getByRole("button", { name: "Log out" }).click()]);
  await page.goto(base + "/ui/");
  out.afterLogout = new URL(page.url()).pathname;
  out.cookieAfterLogout = (await context.cookies(base)).some((c) => c.name === "tollgate_session");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
