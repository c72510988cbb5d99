"""The live farm page the admin listener serves at `/`: one HTML document, inline CSS and JS.

No build step and no external asset. The page opens `/events` (server-sent
events, lb.node.farmfeed) and redraws on every snapshot: the members with their
state as this node sees it, their load and application health, and the
forwarding matrix (requests/s and bytes/s from each entry to each home). A
token given as `?token=` in the page's address is passed on to `/events`.

Only the document lives here: it must not compute anything the admin side sends.
"""

from __future__ import annotations

PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>lb farm</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2430; background: #f6f7f9; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  h2 { font-size: 1.05em; margin: 1.4em 0 .5em; }
  .sub { color: #5b6678; }
  table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px #0002; }
  th, td { padding: .35em .8em; border-bottom: 1px solid #e3e6eb; text-align: left; }
  th { background: #eef1f5; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .state { font-weight: 600; padding: .1em .5em; border-radius: .3em; }
  .alive { background: #d9f5dd; color: #17612a; }
  .suspect { background: #fff1c2; color: #7a5a00; }
  .dead, .left { background: #fadad7; color: #8d1c12; }
  .draining { background: #dde8fb; color: #1f4d99; }
  .unknown, .none { background: #eceef1; color: #5b6678; }
  .down { color: #8d1c12; font-weight: 600; }
  .up { color: #17612a; }
  .cell.diag { background: #f3f7ff; }
  .cell small { color: #5b6678; }
  #conn.bad { color: #8d1c12; }
</style>
</head>
<body>
<h1>Farm <span id="farm">&hellip;</span></h1>
<div class="sub">as seen by node <b id="self">&hellip;</b> &middot;
  <span id="conn">connecting</span></div>
<h2>Members</h2>
<table id="members"><thead><tr>
  <th>node</th><th>state</th><th>load (sessions)</th><th>applications</th>
</tr></thead><tbody></tbody></table>
<h2>Forwarding (requests/s, bytes/s from entry to home)</h2>
<table id="matrix"><thead></thead><tbody></tbody></table>
<p class="sub">Each row is that node's own count, read from its admin listener; a row
is empty while it cannot be read from here. Bytes/s off the diagonal are the flow
bytes on the entry's links to the home; a connection spliced to the local
application counts no bytes.</p>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function rate(v, unit) {
  if (v === undefined || v === null) return "-";
  const steps = ["", "k", "M", "G"];
  let i = 0;
  while (v >= 1000 && i < steps.length - 1) { v /= 1000; i++; }
  return (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + steps[i] + unit;
}
function apps(m) {
  if (!m.apps) return el("span", {class: "none"}, "?");
  const span = el("span");
  for (const [svc, st] of Object.entries(m.apps)) {
    span.append(el("span", {class: st}, svc + " " + st), " ");
  }
  return span;
}
function draw(s) {
  document.getElementById("farm").textContent = s.farm;
  document.getElementById("self").textContent = s.node;
  const tb = document.querySelector("#members tbody");
  tb.replaceChildren();
  for (const m of s.members) {
    const st = m.state || "unknown";
    const tr = el("tr", {"data-member": m.name, "data-state": st});
    tr.append(el("td", {}, m.name + (m.self ? " (this node)" : "")));
    const td = el("td");
    td.append(el("span", {class: "state " + st}, st));
    tr.append(td, el("td", {class: "num"}, m.load === null ? "-" : String(m.load)));
    const ta = el("td");
    ta.append(apps(m));
    tr.append(ta);
    tb.append(tr);
  }
  const names = s.matrix.nodes;
  const head = document.querySelector("#matrix thead");
  const hr = el("tr");
  hr.append(el("th", {}, "entry \\u2192 home"));
  for (const n of names) hr.append(el("th", {}, n));
  head.replaceChildren(hr);
  const body = document.querySelector("#matrix tbody");
  body.replaceChildren();
  for (const e of names) {
    const tr = el("tr", {"data-entry": e});
    tr.append(el("th", {}, e));
    const row = s.matrix.rows[e];
    for (const h of names) {
      const c = row ? row[h] : undefined;
      const td = el("td", {class: "cell num" + (e === h ? " diag" : ""), "data-home": h});
      if (c) {
        td.append(rate(c.rps, "req/s"), el("br"), el("small", {}, rate(c.bps, "B/s")));
      } else {
        td.textContent = row ? "0" : "";
      }
      tr.append(td);
    }
    body.append(tr);
  }
}
const conn = document.getElementById("conn");
const es = new EventSource("/events" + q);
es.onmessage = (ev) => {
  draw(JSON.parse(ev.data));
  conn.textContent = "live, updated " + new Date().toLocaleTimeString();
  conn.className = "";
};
es.onerror = () => { conn.textContent = "disconnected, retrying"; conn.className = "bad"; };
</script>
</body>
</html>
"""

__all__ = ["PAGE"]
