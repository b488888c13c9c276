// pkgbulk status page. Every value from the server is put into the page
// with textContent or setAttribute on SVG geometry, never as markup: a
// package's COMMENT or a log line is text, whatever it holds.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 2000;

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  if (attrs) for (const k in attrs) e.setAttribute(k, String(attrs[k]));
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function dur(ms) {
  if (!ms || ms < 0) ms = 0;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (h > 0) return h + "h" + String(m).padStart(2, "0") + "m";
  if (m > 0) return m + "m" + String(s).padStart(2, "0") + "s";
  return s + "s";
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function cell(tr, text, cls) {
  const td = el("td", cls ? { class: cls } : null, text);
  tr.appendChild(td);
  return td;
}

function renderHeader(s) {
  document.getElementById("database").textContent = s.database;
  const p = document.getElementById("scheduler");
  const l = s.scheduler || {};
  const left = (s.counts.queued || 0) + (s.counts.running || 0);
  p.className = "scheduler " + (l.alive ? "alive" : (l.known && left > 0 ? "dead" : ""));
  p.textContent = s.message || (s.started ? "no scheduler heartbeat recorded" : "no build started yet");
  const r = document.getElementById("resume");
  if (l.resume) {
    r.hidden = false;
    r.textContent = l.resume;
  } else {
    r.hidden = true;
  }
}

const PARTS = [
  ["done", "done"], ["failed", "failed"], ["indirect", "indirect"],
  ["running", "running"], ["queued", "queued"],
];

function renderProgress(s) {
  const bar = document.getElementById("bar");
  clear(bar);
  const total = Math.max(s.total, 1);
  for (const [k, label] of PARTS) {
    const n = s.counts[k] || 0;
    if (n === 0) continue;
    const d = el("div", { class: "seg-" + k, title: label + ": " + n });
    d.style.width = (100 * n / total) + "%";
    bar.appendChild(d);
  }
  const ul = document.getElementById("counts");
  clear(ul);
  for (const [k, label] of PARTS) {
    const li = el("li", { class: "c-" + k, id: "count-" + k });
    li.appendChild(document.createTextNode(label + " "));
    li.appendChild(el("b", null, s.counts[k] || 0));
    if (k === "done" && s.counts.up_to_date > 0) {
      li.appendChild(document.createTextNode(" (" + s.counts.up_to_date + " up to date)"));
    }
    ul.appendChild(li);
  }
  const total_li = el("li", { id: "count-total" });
  total_li.appendChild(document.createTextNode("of "));
  total_li.appendChild(el("b", null, s.total));
  ul.appendChild(total_li);
  const left = (s.counts.queued || 0) + (s.counts.running || 0);
  const eta = document.getElementById("eta");
  if (left === 0) eta.textContent = s.started ? "Every package is decided." : "";
  else if (s.scheduler && s.scheduler.known && !s.scheduler.alive) eta.textContent = left + " packages left; nothing is building them.";
  else eta.textContent = left + " packages left, about " + dur(s.eta_ms) + " on " + Math.max(s.slots, 1) + " slots (estimated from earlier runs).";
}

function renderBuilders(s) {
  const tb = document.querySelector("#builders tbody");
  clear(tb);
  if (s.builders.length === 0) {
    const tr = el("tr"); cell(tr, "no builder has run a job yet", "empty").colSpan = 6; tb.appendChild(tr);
  }
  for (const b of s.builders) {
    const tr = el("tr");
    cell(tr, b.worker);
    cell(tr, b.pkgname || "idle", b.pkgname ? "" : "empty");
    cell(tr, b.phase || "");
    cell(tr, b.pkgname ? dur(b.age_ms) : "", "num");
    cell(tr, b.pkgname ? dur(b.last_beat_ms) + " ago" : "", "num");
    cell(tr, b.jobs, "num");
    tb.appendChild(tr);
  }
}

function renderRunning(s) {
  const box = document.getElementById("running");
  // Keep each log's scroll position where the reader left it.
  const scroll = {};
  for (const pre of box.querySelectorAll("pre.tail")) {
    scroll[pre.dataset.pkg] = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 4;
  }
  clear(box);
  if (s.running.length === 0) box.appendChild(el("p", { class: "empty" }, "nothing is running"));
  else if (s.scheduler && s.scheduler.known && !s.scheduler.alive) {
    box.appendChild(el("p", { class: "stale" }, "The scheduler is gone: these jobs are not running. The next run starts them again."));
  }
  for (const r of s.running) {
    const d = el("div", { class: "job" });
    const h = el("h3", null, r.pkgname);
    d.appendChild(h);
    if (r.comment) d.appendChild(el("div", { class: "comment" }, r.comment));
    let meta = "on " + r.worker + (r.phase ? ", phase " + r.phase : "") + ", for " + dur(r.age_ms);
    if (r.estimate_ms >= 1000) meta += " (estimate " + dur(r.estimate_ms) + ")";
    d.appendChild(el("div", { class: "meta" }, meta));
    if (r.tail.length > 0) {
      const pre = el("pre", { class: "tail" }, r.tail.join("\n"));
      pre.dataset.pkg = r.pkgname;
      d.appendChild(pre);
      if (scroll[r.pkgname] !== false) requestAnimationFrame(() => { pre.scrollTop = pre.scrollHeight; });
    }
    box.appendChild(d);
  }
}

function renderFailures(s) {
  const tb = document.querySelector("#failures tbody");
  clear(tb);
  if (s.failures.length === 0) {
    const tr = el("tr"); cell(tr, "no failures", "empty").colSpan = 6; tb.appendChild(tr);
  }
  for (const f of s.failures) {
    const tr = el("tr");
    const name = cell(tr, f.pkgname);
    if (f.comment) name.appendChild(el("div", { class: "comment" }, f.comment));
    cell(tr, f.state);
    cell(tr, f.phase || "");
    cell(tr, f.breaks || "", "num");
    cell(tr, f.detail);
    const logs = cell(tr, "");
    for (const l of f.logs) {
      // Links only to this server's /logs/, which serves text.
      if (!/^logs\/[^/]+\/[^/]+$/.test(l.url)) continue;
      logs.appendChild(el("a", { href: l.url, rel: "noreferrer" }, l.name));
      logs.appendChild(document.createTextNode(" "));
    }
    if (f.logs.length === 0 && f.log_note) logs.appendChild(el("span", { class: "comment" }, f.log_note));
    tb.appendChild(tr);
  }
}

function renderBreakers(s) {
  const ol = document.getElementById("breakers");
  clear(ol);
  if (s.breakers.length === 0) ol.appendChild(el("li", { class: "empty" }, "none"));
  for (const b of s.breakers) ol.appendChild(el("li", null, b.pkgname + " stops " + b.breaks + (b.breaks === 1 ? " package" : " packages")));
}

const SPAN_COLOURS = { done: "#4caf50", failed: "#e53935", skew: "#e53935", timeout: "#e53935", running: "#2196f3" };

function chartWidth(box) { return Math.max(480, Math.min(box.clientWidth || 900, 1400)); }

function renderTimeline(s) {
  const box = document.getElementById("timeline");
  clear(box);
  const spans = s.timeline;
  if (spans.length === 0) { box.appendChild(el("p", { class: "empty" }, "no job has started yet")); return; }
  const workers = [...new Set(spans.map((x) => x.worker))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const t0 = Math.min(...spans.map((x) => x.start));
  const t1 = Math.max(s.now, ...spans.map((x) => x.end || s.now));
  const W = chartWidth(box), left = 110, row = 22, top = 8, H = top + workers.length * row + 24;
  const scale = (W - left - 10) / Math.max(t1 - t0, 1);
  const g = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
  g.appendChild(svg("title", null, "jobs per builder over time"));
  workers.forEach((w, i) => {
    g.appendChild(svg("text", { x: 4, y: top + i * row + 15 }, w));
    g.appendChild(svg("line", { x1: left, x2: W - 10, y1: top + i * row + row - 1, y2: top + i * row + row - 1, stroke: "#eee" }));
  });
  for (const x of spans) {
    const i = workers.indexOf(x.worker);
    const end = x.end || s.now;
    const r = svg("rect", {
      x: left + (x.start - t0) * scale, y: top + i * row + 3,
      width: Math.max((end - x.start) * scale, 1.5), height: row - 6,
      fill: SPAN_COLOURS[x.state] || "#9e9e9e", rx: 2,
    });
    r.appendChild(svg("title", null, x.pkgname + " on " + x.worker + ": " + x.state + ", " + dur(end - x.start)));
    g.appendChild(r);
  }
  axis(g, t0, t1, left, W - 10, H - 6);
  box.appendChild(g);
}

function axis(g, t0, t1, x0, x1, y) {
  const n = 5;
  for (let k = 0; k <= n; k++) {
    const t = t0 + (t1 - t0) * k / n;
    const x = x0 + (x1 - x0) * k / n;
    g.appendChild(svg("text", { x: Math.min(x, x1 - 50), y: y }, clock(t)));
  }
}

function renderHistory(s) {
  const box = document.getElementById("history");
  clear(box);
  const p = s.progress;
  if (p.length < 2) { box.appendChild(el("p", { class: "empty" }, "nothing decided yet")); return; }
  const W = chartWidth(box), H = 180, left = 40, top = 10, bottom = 24;
  const t0 = p[0].at, t1 = Math.max(p[p.length - 1].at, t0 + 1);
  const total = Math.max(s.total, 1);
  const X = (t) => left + (t - t0) * (W - left - 10) / (t1 - t0);
  const Y = (n) => top + (H - top - bottom) * (1 - n / total);
  const g = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img" });
  g.appendChild(svg("title", null, "packages decided over time"));
  g.appendChild(svg("line", { x1: left, x2: W - 10, y1: Y(total), y2: Y(total), stroke: "#ddd" }));
  g.appendChild(svg("text", { x: 2, y: Y(total) + 4 }, total));
  g.appendChild(svg("text", { x: 2, y: Y(0) }, 0));
  const line = (f, colour) => {
    let d = "";
    p.forEach((q, i) => { d += (i ? "L" : "M") + X(q.at).toFixed(1) + " " + Y(f(q)).toFixed(1); });
    g.appendChild(svg("path", { d: d, fill: "none", stroke: colour, "stroke-width": 2 }));
  };
  line((q) => q.done + q.failed, "#ff9800");
  line((q) => q.done, "#4caf50");
  axis(g, t0, t1, left, W - 10, H - 6);
  box.appendChild(g);
}

function render(s) {
  renderHeader(s);
  renderProgress(s);
  renderBuilders(s);
  renderRunning(s);
  renderFailures(s);
  renderBreakers(s);
  renderTimeline(s);
  renderHistory(s);
  document.getElementById("updated").textContent = "updated " + clock(s.now);
  document.getElementById("error").textContent = "";
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function poll() {
  try {
    const r = await fetch("api/status", { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) throw new Error(r.status + " " + (await r.text()).slice(0, 200));
    render(await r.json());
  } catch (e) {
    document.getElementById("error").textContent = "cannot update: " + e.message;
  }
  setTimeout(poll, POLL_MS);
}

poll();
