// tollgate dashboard: fills the server-rendered pages from the JSON APIs,
// called through /ui/api/ with the session cookie; every change carries
// the page's CSRF token. No other host is contacted.
"use strict";
(function () {
  const S = JSON.parse(document.getElementById("strings").textContent);
  const t = (k) => S[k] || k;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  // el builds an element; text children are text nodes, never HTML.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : String(c));
    return e;
  }

  async function api(method, path, body) {
    const opts = { method, headers: {} };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch("/ui/api" + path, opts);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!r.ok) {
      const msg = (data && data.error && (data.error.message || data.error)) || r.status + " " + r.statusText;
      throw new Error(typeof msg === "string" ? msg : JSON.stringify(msg));
    }
    return data;
  }

  function showError(id, err) {
    const p = $(id);
    if (!p) return;
    p.hidden = !err;
    p.textContent = err ? t("error") + ": " + err.message : "";
  }

  function table(tbl, heads, rows) {
    tbl.replaceChildren(
      el("thead", {}, el("tr", {}, heads.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.label || h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c, i) => el("td", { class: heads[i].num ? "num" : null }, c))))),
    );
  }

  const fmtTime = (s) => (s ? new Date(s).toLocaleString(document.documentElement.lang) : t("never"));

  // Usage: a report's rows as one measure, charted by uPlot as bars.
  const groupKey = { day: "day", model: "model", user: "user", tenant: "tenant_id", route: "route" };
  function measure(row, m) {
    switch (m) {
      case "tokens": return row.input_tokens + row.output_tokens;
      case "gpu_seconds": return row.gpu_seconds;
      case "cost": return parseFloat(row.cost) || 0;
      default: return row.requests;
    }
  }
  let chart = null;
  function drawUsage(rows, group, m) {
    const box = $("usage-chart");
    const labels = rows.map((r) => r[groupKey[group]] || "—");
    const values = rows.map((r) => measure(r, m));
    box.dataset.total = String(values.reduce((a, b) => a + b, 0));
    box.dataset.points = String(values.length);
    if (chart) { chart.destroy(); chart = null; }
    box.replaceChildren();
    if (!rows.length) { box.append(el("p", {}, t("no_usage"))); return; }
    const width = Math.max(box.clientWidth, 260);
    const xs = labels.map((_, i) => i);
    chart = new uPlot({
      width, height: 240,
      scales: { x: { time: false, range: [-0.5, Math.max(labels.length - 0.5, 0.5)] }, y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] } },
      axes: [
        { splits: () => xs, values: (u, splits) => splits.map((i) => labels[i] ?? "") },
        { size: 60 },
      ],
      legend: { show: false },
      cursor: { show: true, drag: { x: false, y: false } },
      series: [{}, { label: t(m), fill: "rgba(11,87,208,.35)", stroke: "#0b57d0", paths: uPlot.paths.bars({ size: [0.6, 80] }), points: { show: false } }],
    }, [xs, values], box);
    box.dataset.rendered = "uplot";
    box.dataset.width = String(width);
  }

  function usageTable(rows, group) {
    const tbl = $("usage-table") || $("list");
    if (!tbl) return;
    table(tbl, [t(group === "day" ? "time" : group), { label: t("requests"), num: 1 }, { label: t("tokens"), num: 1 },
      { label: t("gpu_seconds"), num: 1 }, { label: t("cost"), num: 1 }],
      rows.map((r) => [r[groupKey[group]] || "—", r.requests, r.input_tokens + r.output_tokens, r.gpu_seconds.toFixed(1), r.cost]));
  }

  function setupUsage(path) {
    let rows = [];
    const load = async () => {
      const group = $("usage-group").value;
      try {
        const rep = await api("GET", path + "?group_by=" + group);
        rows = (rep && rep.rows) || [];
        if (group === "user" && path.startsWith("/admin/")) {
          const { users } = await api("GET", "/admin/v1/users");
          const names = new Map(users.map((u) => [u.id, u.name]));
          for (const r of rows) r.user = names.get(r.user_id) || r.user_id;
        }
        if (group === "day") rows.sort((a, b) => (a.day < b.day ? -1 : 1));
        drawUsage(rows, group, $("usage-metric").value);
        usageTable(rows, group);
        showError("admin-error", null);
      } catch (e) { showError("admin-error", e); }
    };
    $("usage-group").addEventListener("change", load);
    $("usage-metric").addEventListener("change", () => drawUsage(rows, $("usage-group").value, $("usage-metric").value));
    const csv = $("usage-csv");
    if (csv) csv.addEventListener("click", () => {
      const group = $("usage-group").value;
      const q = (v) => (/[",\n]/.test(String(v)) ? '"' + String(v).replace(/"/g, '""') + '"' : String(v));
      const idCol = group === "user" ? ["user_id"] : [];
      const lines = [[group, ...idCol, "requests", "input_tokens", "output_tokens", "images", "gpu_seconds", "cost", "in_flight", "reserved"].join(",")];
      for (const r of rows) lines.push([r[groupKey[group]] || "", ...(group === "user" ? [r.user_id] : []), r.requests, r.input_tokens, r.output_tokens, r.images, r.gpu_seconds, r.cost, r.in_flight, r.reserved].map(q).join(","));
      const a = el("a", { href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" })), download: "usage-by-" + group + ".csv" });
      document.body.append(a); a.click(); a.remove();
    });
    let resized;
    window.addEventListener("resize", () => { clearTimeout(resized); resized = setTimeout(() => drawUsage(rows, $("usage-group").value, $("usage-metric").value), 200); });
    return load();
  }

  // Budget: GET /v1/me's budgets (committed is spent plus what calls in
  // flight reserve); the caller's own reservations come from the usage
  // report's total.
  async function loadBudget() {
    const box = $("budget");
    const [me, rep] = await Promise.all([api("GET", "/v1/me"), api("GET", "/v1/me/usage?group_by=day")]);
    const budgets = (me && me.budget) || [];
    if (!budgets.length) { box.replaceChildren(el("p", {}, t("no_budget"))); return; }
    const mine = parseFloat((rep && rep.total && rep.total.reserved) || "0") || 0;
    box.replaceChildren(...budgets.map((b) => {
      const reserved = b.scope === "user" ? mine : null;
      const committed = parseFloat(b.committed) || 0;
      return el("dl", { class: "facts budget", "data-scope": b.scope },
        el("dt", {}, t("scope")), el("dd", {}, b.scope + " · " + b.period),
        el("dt", {}, t("limit")), el("dd", {}, b.limit),
        el("dt", {}, t("spent")), el("dd", { class: "spent" }, reserved === null ? b.committed + " (" + t("reserved") + " ⊂)" : (committed - reserved).toFixed(6)),
        el("dt", {}, t("reserved")), el("dd", { class: "reserved" }, reserved === null ? "—" : reserved.toFixed(6)),
        el("dt", {}, t("remaining")), el("dd", { class: "remaining" }, b.remaining));
    }));
  }

  // Jobs: the list, each unfinished one followed on its SSE stream.
  const streams = new Map();
  function preview(url, name) {
    const ext = (name.split("?")[0].split(".").pop() || "").toLowerCase();
    if (["png", "jpg", "jpeg", "gif", "webp", "svg"].includes(ext)) return el("img", { src: url, alt: name, loading: "lazy" });
    if (["mp3", "wav", "ogg", "flac", "m4a", "opus"].includes(ext)) return el("audio", { src: url, controls: true, preload: "none" });
    if (["mp4", "webm", "mov", "mkv"].includes(ext)) return el("video", { src: url, controls: true, preload: "metadata" });
    return null;
  }
  function outputs(out) {
    if (typeof out === "string") return [out];
    if (Array.isArray(out)) return out.filter((o) => typeof o === "string");
    if (out && typeof out === "object") return Object.values(out).flatMap(outputs);
    return [];
  }
  function jobItem(j) {
    let li = document.querySelector('.job[data-id="' + CSS.escape(j.id) + '"]');
    if (!li) {
      li = el("li", { class: "job", "data-id": j.id, "data-statuses": "" },
        el("header", {}, el("strong", {}, j.model || j.version || ""), el("span", { class: "status" }), el("time", {}, fmtTime(j.created_at))),
        el("progress", { max: "100", "aria-label": t("progress") }),
        el("div", { class: "result" }),
        el("pre", { class: "logs", hidden: true }));
      $("jobs").append(li);
    }
    return li;
  }
  function setStatus(li, status) {
    li.querySelector(".status").textContent = t("job_" + status) === "job_" + status ? status : t("job_" + status);
    li.dataset.status = status;
    const seen = li.dataset.statuses ? li.dataset.statuses.split(",") : [];
    if (seen[seen.length - 1] !== status) li.dataset.statuses = seen.concat(status).join(",");
    const prog = li.querySelector("progress");
    if (status === "succeeded") prog.value = 100;
    else if (status === "failed" || status === "canceled") prog.value = 0;
    else if (status === "starting") prog.value = 10;
    else prog.removeAttribute("value"); // indeterminate while processing
  }
  function showOutput(li, out) {
    const box = li.querySelector(".result");
    box.replaceChildren();
    for (const url of outputs(out)) {
      if (!/^(https?:|\/)/.test(url)) { box.append(el("p", {}, url)); continue; }
      const name = decodeURIComponent(new URL(url, location.href).pathname.split("/").pop() || "result");
      const p = preview(url, name);
      if (p) box.append(p);
      box.append(el("p", {}, el("a", { href: url, download: name }, t("download") + " " + name)));
    }
  }
  function renderJob(j) {
    const li = jobItem(j);
    setStatus(li, j.status);
    if (j.logs) { const pre = li.querySelector(".logs"); pre.hidden = false; pre.textContent = j.logs; }
    if (j.status === "succeeded") showOutput(li, j.output);
    if (j.error) li.querySelector(".result").replaceChildren(el("p", { class: "error" }, j.error));
    if (!["succeeded", "failed", "canceled"].includes(j.status) && j.urls && j.urls.stream && !streams.has(j.id)) follow(j, li);
  }
  function follow(j, li) {
    const es = new EventSource(j.urls.stream);
    streams.set(j.id, es);
    es.addEventListener("status", (e) => setStatus(li, JSON.parse(e.data).status));
    es.addEventListener("logs", (e) => { const pre = li.querySelector(".logs"); pre.hidden = false; pre.textContent += JSON.parse(e.data); });
    es.addEventListener("output", (e) => showOutput(li, JSON.parse(e.data)));
    es.addEventListener("error", (e) => { if (e.data) li.querySelector(".result").replaceChildren(el("p", { class: "error" }, JSON.parse(e.data))); });
    es.addEventListener("done", (e) => {
      es.close(); streams.delete(j.id);
      setStatus(li, JSON.parse(e.data).status);
      api("GET", "/v1/predictions/" + encodeURIComponent(j.id)).then(renderJob).catch(() => {});
    });
  }
  async function loadJobs() {
    let page;
    try { page = await api("GET", "/v1/predictions"); } catch (e) { $("jobs").replaceChildren(el("li", {}, t("no_jobs"))); return; }
    const list = (page && page.results) || [];
    if (!list.length) $("jobs").replaceChildren(el("li", { class: "empty" }, t("no_jobs")));
    for (const j of list.reverse()) renderJob(j);
  }
  function setupJobForm() {
    $("job-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const j = await api("POST", "/v1/predictions", { version: $("job-model").value.trim(), input: { prompt: $("job-prompt").value } });
        const empty = $("jobs").querySelector(".empty"); if (empty) empty.remove();
        const li = jobItem(j);
        $("jobs").prepend(li);
        renderJob(j);
        showError("job-error", null);
      } catch (e) { showError("job-error", e); }
    });
  }

  // Sessions: the user's live logins; any but this one can be ended.
  async function loadSessions() {
    const { sessions } = await api("GET", "/v1/me/sessions");
    table($("sessions"), [t("signed_in"), t("last_used"), t("actions")], (sessions || []).map((s) => [
      fmtTime(s.created_at), fmtTime(s.last_used_at),
      s.current ? t("this_session") : el("button", { type: "button", class: "danger", "data-session": s.id, on: { click: async () => {
        await api("DELETE", "/v1/me/sessions/" + encodeURIComponent(s.id)); loadSessions();
      } } }, t("end_session")),
    ]));
  }

  // API keys.
  async function loadKeys() {
    const data = await api("GET", "/v1/me/keys");
    const keys = (data && data.keys) || [];
    if (!keys.length) { $("keys").replaceChildren(el("caption", {}, t("no_keys"))); return; }
    table($("keys"), [t("name"), t("id"), t("created"), t("last_used"), t("status"), t("actions")], keys.map((k) => [
      k.name, el("code", {}, k.id), fmtTime(k.created_at), fmtTime(k.last_used_at), k.revoked ? t("revoked") : t("active"),
      k.revoked ? "" : el("button", { type: "button", class: "danger", "data-key": k.id, "aria-label": t("revoke") + " " + (k.name || k.id), on: { click: async () => {
        if (!confirm(t("confirm_revoke"))) return;
        await api("DELETE", "/v1/me/keys/" + encodeURIComponent(k.id)); loadKeys();
      } } }, t("revoke")),
    ]));
  }
  function setupKeys() {
    $("key-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const k = await api("POST", "/v1/me/keys", { name: $("key-name").value });
      $("key-secret").textContent = k.key;
      $("key-new").hidden = false;
      $("key-name").value = "";
      loadKeys();
    });
  }

  function setupAccount() {
    $("revoke-sessions").addEventListener("click", async () => {
      if (!confirm(t("confirm_sessions"))) return;
      const r = await fetch("/ui/sessions/end-others", { method: "POST", headers: { "X-CSRF-Token": csrf } });
      if (r.ok) location.reload(); else location.href = "/login";
    });
    $("show-secret").addEventListener("click", async () => {
      const s = await api("GET", "/v1/webhooks/default/secret");
      $("webhook-secret").textContent = s.secret || s.key || JSON.stringify(s);
      $("webhook-secret").hidden = false;
    });
  }

  // Admin sections.
  const list = () => $("list");
  function formJSON(form) { return Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== "")); }
  function onSubmit(id, fn) {
    const f = $(id);
    if (f) f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { await fn(formJSON(f)); f.reset(); showError("admin-error", null); await sections[document.body.dataset.section](); } catch (e) { showError("admin-error", e); }
    });
  }
  const act = (label, fn, cls) => el("button", { type: "button", class: cls, on: { click: async () => {
    try { await fn(); showError("admin-error", null); await sections[document.body.dataset.section](); } catch (e) { showError("admin-error", e); }
  } } }, label);
  const sections = {
    async users() {
      const { users } = await api("GET", "/admin/v1/users");
      table(list(), [t("name"), t("tenant"), t("role"), t("plan"), t("status"), t("actions")], users.map((u) => [
        u.name, u.tenant_id, u.role, u.plan, u.disabled ? t("disabled") : t("active"),
        el("span", { class: "inline" },
          act(u.disabled ? t("enable") : t("disable"), () => api("POST", "/admin/v1/users/" + encodeURIComponent(u.id) + (u.disabled ? "/enable" : "/disable"))),
          act(t("end_user_sessions"), () => api("POST", "/admin/v1/users/" + encodeURIComponent(u.id) + "/revoke"), "danger"),
          act(t("edit_user"), async () => {
            const plan = prompt(t("plan"), u.plan); if (plan === null) return;
            const role = prompt(t("role"), u.role); if (role === null) return;
            await api("PATCH", "/admin/v1/users/" + encodeURIComponent(u.id), { plan, role });
          })),
      ]));
    },
    async tenants() {
      const { tenants } = await api("GET", "/admin/v1/tenants");
      const path = (x) => "/admin/v1/tenants/" + encodeURIComponent(x.id);
      table(list(), [t("id"), t("name"), { label: t("users"), num: 1 }, t("status"), t("created"), t("actions")], (tenants || []).map((x) => [
        x.id, x.name, x.users, x.disabled ? t("disabled") : t("active"), fmtTime(x.created_at),
        el("span", { class: "inline" },
          act(x.disabled ? t("enable") : t("disable"), async () => {
            if (!x.disabled && !confirm(t("confirm_disable_tenant"))) return;
            await api("POST", path(x) + (x.disabled ? "/enable" : "/disable"));
          }, x.disabled ? undefined : "danger"),
          act(t("rename"), async () => {
            const name = prompt(t("name"), x.name); if (name === null || name === x.name) return;
            await api("PATCH", path(x), { name });
          })),
      ]));
    },
    async budgets() {
      const plans = await api("GET", "/admin/v1/plans");
      const ps = Array.isArray(plans) ? plans : (plans && plans.plans) || [];
      table($("plans"), [t("name"), t("rate_limit"), t("concurrency"), t("budget")], ps.map((p) => [p.name, JSON.stringify(p.rate_limit ?? p.RateLimit ?? ""), String(p.concurrency ?? p.Concurrency ?? ""), JSON.stringify(p.budget ?? p.Budget ?? "")]));
      const { budgets } = await api("GET", "/admin/v1/budgets");
      table(list(), [t("scope"), t("id"), t("amount"), t("period"), t("actions")], (budgets || []).map((b) => [b.scope, b.id, b.amount, b.period,
        act(t("delete"), () => api("DELETE", "/admin/v1/budgets/" + encodeURIComponent(b.scope) + "/" + encodeURIComponent(b.id)), "danger")]));
    },
    async bans() {
      const { bans } = await api("GET", "/admin/v1/bans");
      table(list(), [t("ip"), t("reason"), t("until"), t("actions")], (bans || []).map((b) => [b.ip, b.reason || "", fmtTime(b.until),
        act(t("lift"), () => api("DELETE", "/admin/v1/bans/" + b.ip.split("/").map(encodeURIComponent).join("/")))]));
    },
    usage() { return setupUsageOnce(); },
    async queues() {
      const jobs = [];
      for (const status of ["starting", "processing"]) {
        const page = await api("GET", "/admin/v1/jobs?status=" + status);
        jobs.push(...((page && page.results) || []));
      }
      const byKey = new Map();
      for (const j of jobs) {
        const key = (j.model || j.version) + "\u0000" + (j.upstream || "");
        const e = byKey.get(key) || { model: j.model || j.version, upstream: j.upstream || "—", queued: 0, running: 0 };
        if (j.status === "starting") e.queued++; else e.running++;
        byKey.set(key, e);
      }
      table(list(), [t("model"), t("upstream"), { label: t("queued"), num: 1 }, { label: t("running"), num: 1 }],
        [...byKey.values()].map((e) => [e.model, e.upstream, e.queued, e.running]));
      list().dataset.jobs = String(jobs.length);
    },
    async audit(cursor) {
      const page = await api("GET", "/admin/v1/audit" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : ""));
      const rows = (page.events || []).map((e) => [fmtTime(e.at), e.actor_name || e.actor || "", e.action, e.target || "", e.outcome, e.reason || e.detail || "", e.ip || ""]);
      if (cursor) {
        const body = list().querySelector("tbody");
        for (const r of rows) body.append(el("tr", {}, r.map((c) => el("td", {}, c))));
      } else table(list(), [t("time"), t("actor"), t("action"), t("target"), t("outcome"), t("detail"), t("ip")], rows);
      const more = $("more");
      more.hidden = !page.next;
      more.onclick = () => sections.audit(page.next);
    },
  };
  let usageReady = null;
  function setupUsageOnce() {
    if (!usageReady) { usageReady = true; return setupUsage("/admin/v1/usage"); }
    return Promise.resolve();
  }

  function adminPage() {
    const s = document.body.dataset.section;
    onSubmit("user-form", (v) => api("POST", "/admin/v1/users", v));
    onSubmit("tenant-form", (v) => api("POST", "/admin/v1/tenants", v));
    onSubmit("budget-form", (v) => api("PUT", "/admin/v1/budgets/" + encodeURIComponent(v.scope) + "/" + encodeURIComponent(v.id), { amount: v.amount, period: v.period }));
    onSubmit("ban-form", (v) => api("POST", "/admin/v1/bans", v));
    const refresh = $("refresh");
    if (refresh) refresh.addEventListener("click", () => sections.queues());
    const run = () => Promise.resolve(sections[s]()).catch((e) => showError("admin-error", e));
    if (s === "queues") setInterval(run, 2000);
    return run();
  }

  async function homePage() {
    setupJobForm(); setupKeys(); setupAccount();
    await Promise.allSettled([setupUsage("/v1/me/usage"), loadBudget().catch((e) => $("budget").replaceChildren(el("p", { class: "error" }, e.message))), loadJobs(), loadKeys(), loadSessions()]);
  }

  const page = document.body.dataset.page;
  const ready = page === "home" ? homePage() : page === "admin" ? adminPage() : Promise.resolve();
  ready.finally(() => { document.body.dataset.ready = "true"; });
})();
