// Drives tollgate's dashboard in Chromium: the user's usage chart (drawn
// by uPlot), a job run from the page with its live progress and result,
// an API key created and revoked, the admin pages refused to the user
// (403) and shown to an admin, the zh-CN page, and a phone-sized screen.
// Usage: node checks/dashboard.mjs CHROMIUM BASE_URL USER PASSWORD ADMIN ADMIN_PASSWORD JOB_MODEL SCREENSHOT_DIR
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [executablePath, base, user, password, admin, adminPassword, jobModel, shots] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), "tollgate-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  locale: "en-US",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const out = { otherHosts: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(20000);
  page.on("dialog", (d) => d.accept());
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.on("response", (r) => { if (r.status() >= 400) console.error("HTTP", r.status(), r.request().method(), r.url()); });
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== new URL(base).origin && u.protocol !== "blob:" && u.protocol !== "data:") out.otherHosts.push(r.url());
  });
  const ready = () => page.waitForSelector("body[data-ready=true]");

  async function login(name, pw) {
    await page.goto(base + "/login?next=/ui/");
    await page.getByLabel("Username").fill(name);
    await page.getByLabel("Password").fill(pw);
    await Promise.all([page.waitForURL(base + "/ui/"), page.getByRole("button", { name: "Log in" }).click()]);
    await ready();
  }

  await login(user, password);
  // The usage chart: a canvas uPlot drew, from the calls made before.
  const chart = page.locator("#usage-chart");
  out.chartRenderedBy = await chart.getAttribute("data-rendered");
  out.chartTotal = Number(await chart.getAttribute("data-total"));
  out.chartCanvasInked = await page.evaluate(() => {
    const c = document.querySelector("#usage-chart canvas");
    if (!c) return 0;
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  await page.selectOption("#usage-group", "model");
  await page.waitForFunction(() => document.querySelector("#usage-chart").dataset.points !== undefined && document.querySelector("#usage-table").textContent.includes("demo-echo"));
  out.usageByModel = await page.locator("#usage-table").textContent();
  out.budgetText = await page.locator("#budget").textContent();

  // A job run from the page: its status follows the SSE stream live, and
  // its result is previewed and downloadable.
  await page.getByLabel("Model", { exact: true }).fill(jobModel);
  await page.getByLabel("Prompt", { exact: true }).fill("a lighthouse");
  await page.getByRole("button", { name: "Run" }).click();
  const job = page.locator(".job").first();
  await page.waitForSelector(".job[data-status=succeeded] .result img");
  await page.waitForFunction(() => { const i = document.querySelector(".job .result img"); return i && i.complete && i.naturalWidth > 0; });
  out.jobStatuses = await job.getAttribute("data-statuses");
  out.jobImageWidth = await page.evaluate(() => document.querySelector(".job .result img").naturalWidth);
  out.jobDownload = await job.locator("a[download]").getAttribute("href");
  await page.screenshot({ path: join(shots, "dashboard.png"), fullPage: true });
  await page.setViewportSize({ width: 900, height: 1000 });
  await page.waitForFunction(() => Number(document.querySelector("#usage-chart").dataset.width) < 900); // redrawn for the new width
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(shots, "dashboard-small.png") });
  await page.setViewportSize({ width: 1280, height: 900 });

  // An API key by keyboard: focus the name field, type, Enter.
  await page.getByLabel("Key name").focus();
  await page.keyboard.type("laptop");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#key-new:not([hidden])");
  out.keySecret = await page.locator("#key-secret").textContent();
  await page.getByRole("button", { name: "Revoke laptop" }).waitFor();
  out.keyCheck = await page.evaluate(async (k) => (await fetch("/v1/me", { headers: { Authorization: "Bearer " + k } })).status, out.keySecret);
  await page.getByRole("button", { name: "Revoke laptop" }).click();
  await page.getByRole("button", { name: "Revoke laptop" }).waitFor({ state: "detached" });
  out.keyRevokedShown = true;
  await page.waitForFunction(() => document.querySelector("#sessions").textContent.includes("This session"));
  out.sessionsText = await page.locator("#sessions").textContent();

  // The admin pages are not the user's.
  const denied = await page.goto(base + "/ui/admin/users");
  out.userAdminStatus = denied.status();
  out.userAdminText = await page.locator("h1").textContent();

  // Chinese.
  await page.goto(base + "/ui/?lang=zh-CN");
  await ready();
  out.zhHeading = await page.locator("h1").textContent();
  out.zhLang = await page.getAttribute("html", "lang");
  out.zhBudget = await page.locator("#budget").textContent();
  await page.screenshot({ path: join(shots, "dashboard-zh.png"), fullPage: true });
  await page.goto(base + "/ui/?lang=en");
  await ready();

  // A phone: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.reload();
  await ready();
  out.phoneScrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.screenshot({ path: join(shots, "dashboard-phone.png"), fullPage: false });
  await page.setViewportSize({ width: 1280, height: 900 });

  await Promise.all([page.waitForURL(base + "/login"), page.getByRole("button", { name: "Log out" }).click()]);

  // The admin.
  await login(admin, adminPassword);
  out.adminLink = await page.getByRole("link", { name: "Admin" }).count();
  const users = await page.goto(base + "/ui/admin/users");
  out.adminUsersStatus = users.status();
  await ready();
  out.adminUsersText = await page.locator("#list").textContent();
  // Create a user with the form, then disable ana, by keyboard.
  await page.getByLabel("Name", { exact: true }).fill("carol");
  await page.getByLabel("Password", { exact: true }).fill("carol-password");
  await page.getByLabel("Tenant", { exact: true }).fill("acme");
  await page.getByLabel("Password", { exact: true }).press("Enter");
  await page.waitForFunction(() => document.querySelector("#list").textContent.includes("carol"));
  const anaRow = page.locator("#list tr", { hasText: /^ana/ });
  await anaRow.getByRole("button", { name: "Disable" }).focus();
  await page.keyboard.press("Enter");
  await anaRow.getByRole("button", { name: "Enable" }).waitFor();
  out.adminUsersAfter = await page.locator("#list").textContent();
  await page.screenshot({ path: join(shots, "admin-users.png"), fullPage: true });
  // Create a tenant with the form, then disable globex (the confirmation
  // is accepted), by keyboard.
  await page.goto(base + "/ui/admin/tenants");
  await ready();
  await page.getByLabel("ID", { exact: true }).fill("initech");
  await page.getByLabel("Name", { exact: true }).fill("Initech");
  await page.getByLabel("Name", { exact: true }).press("Enter");
  await page.waitForFunction(() => document.querySelector("#list").textContent.includes("Initech"));
  const globexRow = page.locator("#list tr", { hasText: /^globex/ });
  await globexRow.getByRole("button", { name: "Disable" }).focus();
  await page.keyboard.press("Enter");
  await globexRow.getByRole("button", { name: "Enable" }).waitFor();
  out.adminTenantsAfter = await page.locator("#list").textContent();
  await page.screenshot({ path: join(shots, "admin-tenants.png"), fullPage: true });
  await page.goto(base + "/ui/admin/usage");
  await ready();
  out.adminChartRenderedBy = await page.locator("#usage-chart").getAttribute("data-rendered");
  out.adminChartTotal = Number(await page.locator("#usage-chart").getAttribute("data-total"));
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download CSV" }).click()]);
  const { readFileSync } = await import("node:fs");
  out.csv = readFileSync(await download.path(), "utf8");
  await page.screenshot({ path: join(shots, "admin-usage.png"), fullPage: true });
  await page.goto(base + "/ui/admin/audit");
  await ready();
  out.auditText = await page.locator("#list").textContent();
  await page.goto(base + "/ui/admin/queues");
  await ready();
  out.queuesHeading = await page.locator("h1").textContent();
  await page.waitForFunction(() => document.querySelector("#list").textContent.includes("test/slot"));
  out.queuesText = await page.locator("#list").textContent();
  await page.screenshot({ path: join(shots, "admin-queues.png"), fullPage: true });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
