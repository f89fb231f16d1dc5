/* The dashboard page: asks for a key when one is needed, loads JSON from /dashboard/api and renders it.
   Ledger values are only ever inserted as text (textContent / text nodes), never as HTML. */
"use strict";
(function () {
  const C = window.TokenomyChart;
  const money = C.money;
  const COLORS = C.COLORS;
  const state = { key: sessionStorage.getItem("tokenomy-key") || "", role: null, offset: 0, limit: 50, timer: null };
  const $ = (id) => document.getElementById(id);

  function num(v, digits) {
    if (v === null || v === undefined) return "-";
    return Number(v).toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 0 : digits });
  }
  function pct(v) { return (100 * v).toFixed(1) + "%"; }
  function ms(v) { return v === null || v === undefined ? "-" : num(v, Math.abs(v) < 10 ? 1 : 0) + " ms"; }

  async function call(path, options) {
    const headers = Object.assign({}, (options && options.headers) || {});
    if (state.key) headers["Authorization"] = "Bearer " + state.key;
    const res = await fetch(path, Object.assign({}, options || {}, { headers: headers }));
    if (res.status === 401) { showLogin("The key was not accepted."); throw new Error("unauthorized"); }
    const type = res.headers.get("content-type") || "";
    const body = type.startsWith("application/json") ? await res.json() : await res.text();
    if (!res.ok) {
      const message = body && body.error ? body.error.message : String(res.status);
      throw new Error(message);
    }
    return body;
  }

  function windowQuery(extra) {
    const q = new URLSearchParams();
    const since = $("since").value.trim(), until = $("until").value.trim();
    if (since) q.set("since", since);
    if (until) q.set("until", until);
    for (const [k, v] of Object.entries(extra || {})) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
    return q.toString();
  }

  function showError(message) {
    const box = $("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    for (const s of document.querySelectorAll(".tab")) s.hidden = true;
  }

  function table(node, columns, rows, onClick) {
    node.replaceChildren();
    const head = node.createTHead().insertRow();
    for (const [title] of columns) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    const body = node.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const [, get] of columns) tr.insertCell().textContent = get(row);
      if (onClick) tr.addEventListener("click", () => onClick(row));
    }
  }

  function card(label, value) {
    const box = document.createElement("div");
    box.className = "card";
    const l = document.createElement("div"); l.className = "label"; l.textContent = label;
    const v = document.createElement("div"); v.className = "value"; v.textContent = value;
    box.append(l, v);
    return box;
  }

  const GROUP_COLUMNS = [
    ["group", (g) => g.group], ["requests", (g) => num(g.requests)], ["errors", (g) => pct(g.error_rate)],
    ["spend", (g) => money(g.cost_usd)], ["baseline", (g) => money(g.baseline_cost_usd)],
    ["saved", (g) => money(g.saved_total_usd)], ["tokens/req", (g) => num(g.tokens_per_request, 1)],
    ["$/1k req", (g) => money(g.cost_per_1k_requests_usd)], ["p50", (g) => ms(g.p50_latency_ms)],
    ["p95", (g) => ms(g.p95_latency_ms)], ["p99", (g) => ms(g.p99_latency_ms)],
  ];

  async function loadOverview() {
    const q = windowQuery();
    // the advice and the prompts read raw records (slower on a long window): asked for at once, drawn last
    const advising = call("/dashboard/api/advice?" + q), pending = call("/dashboard/api/prompts?" + q);
    advising.catch(() => {});
    pending.catch(() => {});
    const [data, budgets, semantic] = await Promise.all([
      call("/dashboard/api/overview?" + q), call("/dashboard/api/budgets"), call("/dashboard/api/semantic"),
    ]);
    const t = data.total;
    const saved = t.saved_total_usd;
    const cards = $("cards");
    cards.replaceChildren(
      card("spend", money(t.cost_usd)), card("baseline", money(t.baseline_cost_usd)),
      card("saved", money(saved) + (t.baseline_cost_usd > 0 ? " (" + pct(saved / t.baseline_cost_usd) + ")" : "")),
      card("requests", num(t.requests)), card("tokens in", num(t.prompt_tokens)), card("tokens out", num(t.completion_tokens)),
      card("error rate", pct(t.error_rate)), card("latency p50", ms(t.p50_latency_ms)), card("latency p95", ms(t.p95_latency_ms)),
    );
    for (const lever of data.levers) cards.appendChild(card("saved by " + lever, money(t.saved_usd[lever])));
    const times = data.series.map((p) => p.t);
    C.costOverTime($("cost-chart"), data.series, data.levers, data.bucket_s);
    C.lines($("latency-chart"), times, [
      { name: "latency p50", color: "#2f81f7", values: data.series.map((p) => p.p50_latency_ms) },
      { name: "latency p95", color: "#2f81f7", dash: true, values: data.series.map((p) => p.p95_latency_ms) },
      { name: "TTFT p50", color: "#3fb950", values: data.series.map((p) => p.p50_ttft_ms) },
      { name: "TTFT p95", color: "#3fb950", dash: true, values: data.series.map((p) => p.p95_ttft_ms) },
    ], data.bucket_s, (v) => ms(v));
    C.leverBars($("lever-chart"), data.levers, t.saved_usd);
    C.costPer1k($("task-chart"), data.by_task, 12);
    const outcomes = Object.entries(data.cache).sort((a, b) => b[1] - a[1]);
    C.bars($("cache-chart"), outcomes.map((o) => o[0]), outcomes.map((o) => o[1]), (v) => num(v), COLORS.cache);
    table($("task-table"), GROUP_COLUMNS, data.by_task);
    table($("model-table"), GROUP_COLUMNS, data.by_model);
    renderBudgets(budgets);
    renderSemantic(semantic);
    renderAdvice(await advising);
    const prompts = await pending;
    table($("prompt-table"), [["prompt hash", (p) => p.prompt_hash], ["requests", (p) => num(p.requests)],
      ["spend", (p) => money(p.cost_usd)], ["tokens", (p) => num(p.tokens)]], prompts.data);
  }

  function renderBudgets(budgets) {
    const rows = budgets.data;
    $("budget-panel").hidden = !rows.length;
    const alerts = $("budget-alerts");
    alerts.replaceChildren();
    for (const b of rows.filter((r) => r.alert)) {
      const p = document.createElement("p");
      p.className = "alert " + b.alert;
      p.textContent = (b.alert === "over" ? "Over budget: " : "Near the limit: ") + b.scope + " " + b.name + " has spent " +
        money(b.spent_usd) + " of its " + money(b.limit_usd) + " " + b.period + " budget (" + pct(b.used) + ", " +
        (b.action === "hard" ? "refused past it" : "downgraded past it") + "); resets " + b.resets_at + ".";
      alerts.appendChild(p);
    }
    table($("budget-use-table"), [
      ["budget", (b) => b.scope + " " + b.name], ["period", (b) => b.period], ["spent", (b) => money(b.spent_usd)],
      ["limit", (b) => money(b.limit_usd) + " " + b.action], ["used", (b) => (b.used === null ? "-" : pct(b.used))],
      ["alert", (b) => b.alert || ""], ["resets", (b) => b.resets_at],
    ], rows);
  }

  // audited semantic hits per task (counts since the task's threshold last moved, and all ever)
  function renderSemantic(semantic) {
    const rows = semantic.data;
    $("semantic-panel").hidden = !rows.length;
    $("semantic-note").textContent = "Error budget " + pct(semantic.budget) + " false hits per task; " +
      pct(semantic.audit_share) + " of semantic hits are also answered upstream to check them.";
    const alerts = $("semantic-alerts");
    alerts.replaceChildren();
    for (const r of rows.filter((x) => x.suspended)) {
      const p = document.createElement("p");
      p.className = "alert over";
      p.textContent = "Semantic hits of task " + r.task + " are suspended: audits put its false-hit rate above the " +
        "budget even at the strictest threshold. Its requests go upstream, and each answer is compared with what " +
        "the cache would have served (" + num(r.audits) + " compared so far, " + num(r.false_hits) + " different).";
      alerts.appendChild(p);
    }
    table($("semantic-table"), [
      ["task", (r) => r.task], ["audits", (r) => num(r.audits)], ["false hits", (r) => num(r.false_hits)],
      ["false-hit rate", (r) => (r.false_hit_rate === null ? "-" : pct(r.false_hit_rate))],
      ["95% interval", (r) => pct(r.false_hit_rate_low95) + " to " + pct(r.false_hit_rate_high95)],
      ["threshold", (r) => (r.suspended ? "suspended" : (r.threshold_offset >= 0 ? "+" : "") + r.threshold_offset.toFixed(2))],
      ["all audits", (r) => num(r.total_false_hits) + " false of " + num(r.total_audits)],
    ], rows);
  }

  function renderAdvice(advice) {
    const list = $("advice-list");
    list.replaceChildren();
    for (const note of advice.notes || []) {
      const p = document.createElement("p"); p.className = "note"; p.textContent = "Note: " + note; list.appendChild(p);
    }
    if (!advice.recommendations.length) {
      const p = document.createElement("p"); p.textContent = "No action found that would have saved money in this window.";
      list.appendChild(p);
    }
    // each action folds to its title and saving; the two largest start open
    advice.recommendations.slice(0, 8).forEach((r, i) => {
      const box = document.createElement("details"); box.className = "rec"; box.open = i < 2;
      const head = document.createElement("summary");
      const h = document.createElement("h3"); h.textContent = (i + 1) + ". " + r.title;
      const s = document.createElement("span"); s.className = "saving";
      s.textContent = "~" + money(r.monthly_saving_usd) + "/month (" + money(r.window_saving_usd) + " in this window), confidence " + r.confidence;
      head.append(h, s);
      const ev = document.createElement("ul");
      for (const line of r.evidence) { const li = document.createElement("li"); li.textContent = line; ev.appendChild(li); }
      const act = document.createElement("pre"); act.textContent = r.action;
      const as = document.createElement("ul");
      for (const line of r.assumptions) { const li = document.createElement("li"); li.textContent = "assumes " + line; as.appendChild(li); }
      box.append(head, ev, act, as);
      list.appendChild(box);
    });
  }

  function filters() {
    return { task: $("f-task").value, model: $("f-model").value, key: $("f-key").value, status: $("f-status").value };
  }

  function fill(select, values) {
    const current = select.value;
    select.replaceChildren(new Option("any", ""));
    for (const v of values) select.appendChild(new Option(v, v));
    select.value = values.includes(current) ? current : "";
  }

  async function loadChoices() {
    const c = await call("/dashboard/api/choices?" + windowQuery());
    fill($("f-task"), c.task); fill($("f-model"), c.model); fill($("f-key"), c.key);
  }

  async function loadRequests() {
    const q = windowQuery(Object.assign(filters(), { limit: state.limit, offset: state.offset }));
    const page = await call("/dashboard/api/requests?" + q);
    $("match-count").textContent = num(page.total) + " matching requests";
    table($("request-table"), [
      ["time (UTC)", (r) => new Date(r.ts * 1000).toISOString().replace("T", " ").slice(0, 19)], ["task", (r) => r.task],
      ["model", (r) => r.model], ["key", (r) => r.key || ""], ["status", (r) => r.status], ["cache", (r) => r.cache],
      ["tokens in", (r) => num(r.prompt_tokens)], ["tokens out", (r) => num(r.completion_tokens)],
      ["cost", (r) => money(r.cost_usd)], ["saved", (r) => money(r.baseline_cost_usd - r.cost_usd)], ["latency", (r) => ms(r.latency_ms)],
    ], page.data, showRecord);
    $("prev").disabled = state.offset === 0;
    $("next").disabled = state.offset + state.limit >= page.total;
  }

  async function csvDownload(event) {
    event.preventDefault();
    const text = await call("/dashboard/api/requests.csv?" + windowQuery(filters()));
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url; a.download = "tokenomy-requests.csv"; a.click();
    URL.revokeObjectURL(url);
  }

  async function showRecord(row) {
    const rec = await call("/dashboard/api/record?id=" + encodeURIComponent(row.request_id));
    const box = $("record");
    box.hidden = false;
    box.textContent = JSON.stringify(rec, null, 2);
  }

  async function loadKeys() {
    const keys = await call("/admin/keys?include_revoked=true");
    table($("key-table"), [
      ["name", (k) => k.name], ["id", (k) => k.id], ["team", (k) => k.team || ""], ["hint", (k) => k.hint || ""],
      ["revoked", (k) => (k.revoked ? "yes" : "")], ["", (k) => (k.revoked || k.source === "config" ? "" : "revoke")],
    ], keys.data, async (k) => {
      if (k.revoked || k.source === "config") return;
      if (!window.confirm("Revoke key " + k.name + "?")) return;
      await call("/admin/keys/" + encodeURIComponent(k.id), { method: "DELETE" });
      await loadKeys();
    });
    const budgets = await call("/admin/budgets");
    table($("budget-table"), [
      ["subject", (b) => b.subject], ["period", (b) => b.period], ["spent", (b) => money(b.spent_usd)],
      ["reserved", (b) => money(b.reserved_usd)], ["hard limit", (b) => (b.hard_limit_usd === null ? "-" : money(b.hard_limit_usd))],
      ["soft limit", (b) => (b.soft_limit_usd === null ? "-" : money(b.soft_limit_usd))],
      ["used", (b) => (b.hard_limit_usd ? pct(b.spent_usd / b.hard_limit_usd) : "-")], ["resets", (b) => b.resets_at],
    ], budgets.data);
  }

  async function createKey(event) {
    event.preventDefault();
    $("key-error").textContent = "";
    const spec = { name: $("k-name").value.trim() };
    if ($("k-team").value.trim()) spec.team = $("k-team").value.trim();
    if ($("k-budget").value.trim()) spec.budget = { usd_per_month: Number($("k-budget").value.trim()) };
    try {
      const made = await call("/admin/keys", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(spec) });
      const secret = $("key-secret");
      secret.hidden = false;
      secret.textContent = "New key (shown once): " + made.key;
      await loadKeys();
    } catch (e) { $("key-error").textContent = e.message; }
  }

  async function refresh() {
    showError("");
    try {
      const tab = document.querySelector("nav button.active").dataset.tab;
      if (tab === "overview") await loadOverview();
      else if (tab === "requests") { await loadChoices(); await loadRequests(); }
      else if (tab === "keys") await loadKeys();
      document.body.dataset.loaded = tab;
    } catch (e) { if (e.message !== "unauthorized") showError(e.message); }
  }

  function select(tab) {
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === tab);
    for (const s of document.querySelectorAll(".tab")) s.hidden = s.id !== tab;
    delete document.body.dataset.loaded;
    refresh();
  }

  async function start() {
    try {
      const me = await call("/dashboard/api/whoami");
      if (me.needs_key) { showLogin(""); return; }
      state.role = me.role;
      $("login").hidden = true;
      $("who").textContent = me.role === "tenant" ? "tenant " + me.tenant : me.role;
      $("keys-tab").hidden = me.role !== "admin";
      select("overview");
    } catch (e) { if (e.message !== "unauthorized") showError(e.message); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => select(b.dataset.tab));
    $("window-form").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; refresh(); });
    $("filter-form").addEventListener("submit", (e) => { e.preventDefault(); state.offset = 0; delete document.body.dataset.loaded; refresh(); });
    $("csv-link").addEventListener("click", csvDownload);
    $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); refresh(); });
    $("next").addEventListener("click", () => { state.offset += state.limit; refresh(); });
    $("key-form").addEventListener("submit", createKey);
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      state.key = $("key").value.trim();
      sessionStorage.setItem("tokenomy-key", state.key);
      start();
    });
    $("live").addEventListener("change", () => {
      clearInterval(state.timer);
      if ($("live").checked) state.timer = setInterval(refresh, 10000);
    });
    start();
  });
})();
