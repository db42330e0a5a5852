"""The status page: one HTML document whose script reads ``/api/status`` every refresh.

No framework on the client and nothing fetched from elsewhere (the page works offline and
leaks no visit to a CDN): plain DOM calls build the tables, and the plots are SVG polylines
drawn from the report's ``plots`` section. Text from the report is only ever set through
``textContent``, never parsed as HTML, so a service name or an event message cannot inject
markup.
"""

from __future__ import annotations

import html

STYLE = """
:root { --ok:#1a7f37; --ok-bg:#dafbe1; --bad:#cf222e; --bad-bg:#ffebe9; --warn:#9a6700;
        --warn-bg:#fff8c5; --muted:#57606a; --line:#d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 12px 20px; display: flex;
         align-items: center; gap: 16px; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; font-weight: 600; }
header .meta { color: #c9d1d9; font-size: 13px; }
#summary { padding: 3px 10px; border-radius: 12px; font-weight: 600; color: #fff; }
#summary:empty { display: none; }
#summary.ok { background: var(--ok); } #summary.bad { background: var(--bad); }
main { padding: 16px 20px; display: grid; gap: 16px;
       grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 14px;
          min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 0 0 8px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eaeef2;
         white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
td.wrap { white-space: normal; min-width: 14em; }
.errors:empty { display: none; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.status { font-weight: 600; border-radius: 4px; }
.ok td.status, span.ok { color: var(--ok); background: var(--ok-bg); }
.bad td.status, span.bad { color: var(--bad); background: var(--bad-bg); }
.warn td.status, span.warn { color: var(--warn); background: var(--warn-bg); }
span.ok, span.bad, span.warn { padding: 1px 6px; border-radius: 4px; font-weight: 600; }
.muted { color: var(--muted); }
.errors { color: var(--bad); }
.plots { display: grid; gap: 12px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg.plot { width: 100%; height: 180px; background: #fbfcfd; border: 1px solid #eaeef2; }
svg.plot text { font-size: 10px; fill: var(--muted); }
.legend { font-size: 11px; color: var(--muted); display: flex; flex-wrap: wrap; gap: 4px 10px; }
.legend i { display: inline-block; width: 10px; height: 3px; margin-right: 3px;
            vertical-align: middle; }
a { color: #0969da; }
"""

SCRIPT = r"""
const $ = (id) => document.getElementById(id);
const COLORS = ["#0969da","#cf222e","#1a7f37","#8250df","#bc4c00","#1b7c83","#bf3989",
  "#4d2d00","#6e7781","#0550ae","#a40e26","#116329","#6639ba","#953800","#3192aa","#99286e"];
let refreshMs = 5000;

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function statusClass(status) {
  if (["healthy", "running", "exited (0)"].includes(status)) return "ok";
  if (status === "starting") return "warn";
  return "bad";
}
function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + "s ago";
  if (s < 5400) return Math.round(s / 60) + "m ago";
  if (s < 172800) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}
function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}
function secs(s) {
  if (s === null || s === undefined) return "-";
  return s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
}
function table(id, columns, rows, rowClass) {
  const t = $(id); t.replaceChildren();
  const head = el("tr"); columns.forEach(([, title]) => head.append(el("th", title)));
  t.append(head);
  rows.forEach((row) => {
    const tr = el("tr");
    if (rowClass) rowClass(tr, row);
    columns.forEach(([key, , fmt, cls]) => {
      const value = fmt ? fmt(row[key], row) : row[key];
      if (value instanceof Node) { const td = el("td", null, cls); td.append(value); tr.append(td); return; }
      const td = el("td", value === null || value === undefined || value === "" ? "-" : value, cls);
      tr.append(td);
    });
    t.append(tr);
  });
}
function link(url) {
  if (!url || !/^https?:\/\//.test(url)) return url || "-";
  const a = el("a", url); a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer"; return a;
}

function drawPlot(svg, series, unit) {
  svg.replaceChildren();
  const W = 420, H = 180, L = 56, R = 8, T = 8, B = 20;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const names = Object.keys(series).filter((k) => series[k].length);
  const legend = svg.nextElementSibling; if (legend) legend.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    Object.entries(attrs).forEach(([k, v]) => n.setAttribute(k, v));
    if (text !== undefined) n.textContent = text; svg.append(n); return n;
  };
  if (!names.length) { add("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, "no data yet"); return; }
  let x0 = Infinity, x1 = -Infinity, y1 = 0;
  names.forEach((k) => series[k].forEach(([x, y]) => {
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }));
  if (x1 === x0) { x0 -= 30; x1 += 30; }
  y1 = y1 > 0 ? y1 * 1.1 : 1;
  const px = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const py = (y) => H - B - y / y1 * (H - T - B);
  add("line", {x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#d0d7de"});
  add("line", {x1: L, y1: T, x2: L, y2: H - B, stroke: "#d0d7de"});
  add("text", {x: L - 4, y: T + 8, "text-anchor": "end"}, (y1 < 1 ? y1.toPrecision(2) : y1 < 10 ? y1.toFixed(1) : Math.round(y1)) + " " + unit);
  add("text", {x: L - 4, y: H - B, "text-anchor": "end"}, "0");
  const time = (x) => new Date(x * 1000).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"});
  add("text", {x: L, y: H - 6}, time(x0));
  add("text", {x: W - R, y: H - 6, "text-anchor": "end"}, time(x1));
  names.forEach((k, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = series[k].map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    const line = add("polyline", {points: pts, fill: "none", stroke: color, "stroke-width": 1.6, class: "series"});
    line.dataset.series = k;
    const [lx, ly] = series[k][series[k].length - 1];
    add("circle", {cx: px(lx), cy: py(ly), r: 2.2, fill: color});
    if (legend) { const item = el("span"); const swatch = el("i"); swatch.style.background = color;
      item.append(swatch, document.createTextNode(k)); legend.append(item); }
  });
}

function render(doc) {
  refreshMs = Math.max(1000, (doc.refresh_s || 5) * 1000);
  const h = doc.health || {services: []};
  $("env").textContent = `${doc.environment} (${doc.project})`;
  const summary = $("summary");
  summary.textContent = (h.ok ? "" : "DEGRADED - ") + (h.summary || "");
  summary.className = h.ok ? "ok" : "bad";
  $("updated").textContent = "updated " + new Date(doc.time).toLocaleTimeString();
  table("services", [
    ["service", "Service", (v, r) => v + (r.oneshot ? " (one-shot)" : "")],
    ["status", "Status", null, "status"], ["restarts", "Restarts", null, "num"],
    ["uptime", "Uptime", null, "num"],
    ["cpu_percent", "CPU", (v) => v === null || v === undefined ? "-" : v.toFixed(1) + "%", "num"],
    ["memory", "Memory used / limit", null, "num"], ["url", "URL", link]],
    h.services, (tr, r) => { tr.className = "service " + statusClass(r.status); tr.dataset.service = r.service; });

  const smoke = doc.smoke || {};
  if (smoke.last) {
    $("smoke-note").textContent = `${smoke.last.ok ? "passed" : "FAILED"} ${ago(smoke.last.time)}` + (smoke.message ? ` (${smoke.message})` : "");
    $("smoke-note").className = smoke.last.ok ? "ok" : "bad";
    table("smoke", [["name", "Hop"], ["verdict", "Result", null, "status"],
      ["duration_s", "Time", secs, "num"], ["detail", "Detail", null, "wrap"]], smoke.last.hops || [],
      (tr, r) => { tr.className = r.verdict === "passed" ? "ok" : (r.ok ? "warn" : "bad"); });
  } else { $("smoke-note").textContent = smoke.message || "no smoke run yet"; $("smoke-note").className = "muted"; $("smoke").replaceChildren(); }

  table("deploys", [["time", "When", ago], ["kind", "Kind"], ["result", "Result", null, "status"],
    ["user", "Who"], ["duration_s", "Duration", secs, "num"], ["git_commit", "Commit"], ["id", "Id"]],
    doc.deploys || [], (tr, r) => { tr.className = r.result === "ok" ? "ok" : "bad"; });
  if (!(doc.deploys || []).length) $("deploys-note").textContent = "no deployment recorded yet";
  else $("deploys-note").textContent = "";

  const lock = doc.lock || {};
  $("lock").textContent = lock.held && lock.holder
    ? `${lock.state}: ${lock.holder.user}@${lock.holder.host} since ${lock.holder.time} (${lock.holder.command})`
    : (lock.state || "unknown");
  $("lock").className = lock.held ? "warn" : "ok";

  const b = doc.backups || {};
  const sched = b.schedule || {};
  $("schedule").textContent = sched.overdue ? (sched.message || "overdue")
    : `schedule ${sched.schedule || "manual"}: on time` + (sched.last_success ? `, last success ${ago(sched.last_success)}` : "");
  $("schedule").className = sched.overdue ? "bad" : "ok";
  table("backups", [["id", "Local copy"], ["time", "Age", ago, "num"], ["size", "Size", bytes, "num"],
    ["duration_s", "Took", secs, "num"],
    ["offsite", "Off-site", (v) => v ? `snapshot ${v.short_id || String(v.snapshot || "").slice(0, 8)}` : "-"],
    ["verified", "Last verify", (v) => v ? `${v.label} ${ago(v.time)}` : "never", "status"]],
    b.local || [], (tr, r) => { tr.className = !r.verified ? "warn" : (r.verified.ok ? "ok" : "bad"); });
  if (!(b.local || []).length) $("backups-note").textContent = "no local backup yet";
  else $("backups-note").textContent = `${b.count} local cop${b.count === 1 ? "y" : "ies"}`;
  const off = b.offsite || {};
  const good = (off.copies || []).filter((c) => c.ok);
  $("offsite").textContent = off.failure
    ? `the last copy failed ${ago(off.failure.time)}: ${off.failure.error}`
    : good.length
      ? `${good.length} cop${good.length === 1 ? "y" : "ies"}, newest ${good[0].id} (snapshot ${good[0].snapshot}, ${bytes(good[0].size)}) ${ago(good[0].time)}` + (good[0].duration_s ? `, took ${secs(good[0].duration_s)}` : "")
      : (off.message || "no off-site copy yet");
  $("offsite").className = off.failure ? "bad" : (good.length ? "ok" : "muted");
  const drill = (b.drill || {}).last;
  $("drill").textContent = drill
    ? `${drill.ok ? "passed" : "FAILED"} ${ago(drill.time)} (backup ${drill.backup}), restore took ${secs(drill.restore_s)}` + (drill.problem ? `: ${drill.problem}` : "")
    : ((b.drill || {}).message || "no restore drill yet");
  $("drill").className = drill ? (drill.ok ? "ok" : "bad") : "muted";

  const p = doc.plots || {};
  drawPlot($("plot-cpu"), p.cpu || {}, "%");
  drawPlot($("plot-mem"), p.memory_mib || {}, "MiB");
  drawPlot($("plot-backup-size"), {"size (MiB)": p.backup_size_mib || []}, "MiB");
  drawPlot($("plot-backup-time"), {"duration (s)": p.backup_duration_s || []}, "s");
  drawPlot($("plot-deploy"), {"deploy (s)": p.deploy_duration_s || []}, "s");

  table("plugins", [["name", "Plugin"], ["version", "Version"], ["source", "Source"],
    ["status", "Status", null, "status"], ["hooks", "Hooks", (v) => (v || []).map((x) => x.replace("lakehouse_", "")).join(", "), "wrap"]],
    doc.plugins || [], (tr, r) => { tr.className = r.status === "active" ? "ok" : (r.status === "failed" ? "bad" : "warn"); });
  table("events", [["time", "When", ago], ["severity", "Severity"], ["service", "Service"],
    ["kind", "Event"], ["message", "Message", null, "wrap"]], doc.events || [],
    (tr, r) => { tr.className = ["error", "critical"].includes(r.severity) ? "bad" : (r.severity === "warning" ? "warn" : ""); });
  if (!(doc.events || []).length) $("events-note").textContent = "no event in the last day";
  else $("events-note").textContent = "";
  $("errors").textContent = (doc.errors || []).join("; ");
}

async function refresh() {
  try {
    const answer = await fetch("api/status", {credentials: "same-origin", cache: "no-store"});
    if (answer.status === 401) { window.location.href = "login"; return; }
    if (answer.ok) { render(await answer.json()); $("live").textContent = "live"; }
    else $("live").textContent = "server answered " + answer.status;
  } catch (err) { $("live").textContent = "server unreachable"; }
  setTimeout(refresh, refreshMs);
}
refresh();
"""

BODY = """
<header>
  <h1>lakehouse <span id="env"></span></h1>
  <span id="summary"></span>
  <span class="meta" id="updated"></span>
  <span class="meta" id="live">loading</span>
</header>
<main>
  <section class="wide"><h2>Services</h2><table id="services"></table></section>
  <section><h2>Smoke check</h2><p><span id="smoke-note"></span></p><table id="smoke"></table></section>
  <section><h2>Deploy lock</h2><p><span id="lock"></span></p>
    <h2>Deploys</h2><p class="muted" id="deploys-note"></p><table id="deploys"></table></section>
  <section class="wide"><h2>Backups</h2>
    <p><span id="schedule"></span></p>
    <p class="muted" id="backups-note"></p><table id="backups"></table>
    <p>Off-site: <span id="offsite"></span></p>
    <p>Last restore drill: <span id="drill"></span></p>
  </section>
  <section class="wide"><h2>Plots</h2><div class="plots">
    <figure><figcaption>CPU per service</figcaption><svg class="plot" id="plot-cpu"></svg><div class="legend"></div></figure>
    <figure><figcaption>Memory per service</figcaption><svg class="plot" id="plot-mem"></svg><div class="legend"></div></figure>
    <figure><figcaption>Backup size over the last runs</figcaption><svg class="plot" id="plot-backup-size"></svg><div class="legend"></div></figure>
    <figure><figcaption>Backup duration over the last runs</figcaption><svg class="plot" id="plot-backup-time"></svg><div class="legend"></div></figure>
    <figure><figcaption>Deploy durations</figcaption><svg class="plot" id="plot-deploy"></svg><div class="legend"></div></figure>
  </div></section>
  <section><h2>Plugins</h2><table id="plugins"></table></section>
  <section><h2>Events of the last day</h2><p class="muted" id="events-note"></p><table id="events"></table></section>
  <section class="wide errors" id="errors"></section>
</main>
"""


def status_page(environment: str) -> str:
    title = html.escape(f"lakehouse {environment}: status")
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><style>{STYLE}</style></head><body>{BODY}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def login_page(environment: str, problem: str = "") -> str:
    """The one-time sign-in form: the token goes in a POST body, never in a URL."""
    title = html.escape(f"lakehouse {environment}: sign in")
    note = f"<p class='errors'>{html.escape(problem)}</p>" if problem else ""
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{title}</h1></header><main><section>"
        "<h2>This status page needs its token</h2>"
        "<p>Paste the token from <code>.lakehouse/serve/token</code> on the server "
        "(made by <code>invoke serve --new-token</code>).</p>"
        f"{note}<form method='post' action='login'>"
        "<input type='password' name='token' autocomplete='current-password' size='48' "
        "autofocus> <button type='submit'>Sign in</button></form>"
        "</section></main></body></html>\n"
    )
