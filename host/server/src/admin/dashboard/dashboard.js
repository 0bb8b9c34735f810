// aigw dashboard: reads the admin JSON with the admin key the operator typed (kept in this
// tab's sessionStorage) and draws it. Every value is written with textContent or as an SVG
// attribute, never parsed as markup: stored conversation text is shown, never run.
"use strict";

const KEY = "aigw-admin-key";
const FAST_MS = 2000; // targets and the chart: a broken target shows within seconds
const SLOW_MS = 10000; // plugins, keys and usage change rarely
const SVG = "http://www.w3.org/2000/svg";

let fastTimer = null;
let slowTimer = null;

function $(id) {
  return document.getElementById(id);
}

// An element with text content and attributes; children appended as given.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

class AuthError extends Error {}

async function api(path) {
  const key = sessionStorage.getItem(KEY);
  const response = await fetch(path, {
    headers: { Authorization: "Bearer " + key },
    cache: "no-store",
    credentials: "omit",
  });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (response.status === 401 || response.status === 403) {
    throw new AuthError((body && body.error && body.error.message) || "the admin key was refused");
  }
  if (!response.ok) {
    const message = (body && body.error && body.error.message) || response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function when(unixSeconds) {
  if (!unixSeconds) return "";
  return new Date(unixSeconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function ago(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

function replaceRows(table, rows) {
  const body = table.tBodies[0];
  body.replaceChildren(...rows);
}

function setStatus(text) {
  $("status").textContent = text;
}

// --- sign-in -----------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearInterval(fastTimer);
  clearInterval(slowTimer);
  fastTimer = slowTimer = null;
  $("board").hidden = true;
  $("login").hidden = false;
  $("sign-out").hidden = true;
  $("login-error").textContent = message || "";
  setStatus("not signed in");
}

async function signIn() {
  try {
    await api("/admin/targets");
  } catch (error) {
    signOut(error instanceof AuthError ? error.message : "cannot reach aigw: " + error.message);
    return;
  }
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("login-error").textContent = "";
  await Promise.all([fast(), slow(), loadNamespaces()]);
  fastTimer = setInterval(fast, FAST_MS);
  slowTimer = setInterval(slow, SLOW_MS);
}

// Runs `work`; an auth failure signs out, other failures go to `note` (or the status line).
async function guarded(work, note) {
  try {
    await work();
    if (note) note.textContent = "";
  } catch (error) {
    if (error instanceof AuthError) {
      signOut(error.message);
    } else if (note) {
      note.textContent = error.message;
    } else {
      setStatus("error: " + error.message);
    }
  }
}

async function fast() {
  await Promise.all([guarded(loadTargets), guarded(loadHistory)]);
  if (sessionStorage.getItem(KEY)) setStatus("updated " + new Date().toLocaleTimeString());
}

async function slow() {
  await Promise.all([
    guarded(loadPlugins, $("plugins-note")),
    guarded(loadKeys, $("keys-note")),
  ]);
}

// --- targets -----------------------------------------------------------------------------

async function loadTargets() {
  const { targets } = await api("/admin/targets");
  const rows = targets.map((t) => {
    const failed = Object.entries(t.failed || {})
      .map(([cls, n]) => cls + " " + n)
      .join(", ");
    const recent = el("ul", { class: "recent" });
    for (const e of (t.recent_errors || []).slice(0, 5)) {
      recent.append(
        el("li", {}, ago(e.age_ms) + " · " + e.class + (e.status ? " " + e.status : "") + " · " + e.message),
      );
    }
    let state = t.state;
    if (t.misconfigured) state += " (misconfigured)";
    if (t.cooldown_remaining_ms > 0) state += " (cooling " + Math.ceil(t.cooldown_remaining_ms / 1000) + " s)";
    return el(
      "tr",
      { "data-target": t.target, "data-state": t.state },
      el("td", {}, t.target),
      el("td", {}, (t.routes || []).join(", ")),
      el("td", {}, el("span", { class: "state state-" + t.state }, state)),
      el("td", {}, t.served),
      el("td", {}, failed),
      el("td", {}, t.latency_ewma_ms == null ? "" : t.latency_ewma_ms + " ms"),
      el("td", {}, recent),
    );
  });
  replaceRows($("targets"), rows);
}

// --- the chart ---------------------------------------------------------------------------

async function loadHistory() {
  const history = await api("/admin/history");
  drawChart(history);
}

function drawChart(history) {
  const slots = history.buckets_kept;
  const width = history.bucket_seconds;
  const last = Math.floor(history.now / width);
  const first = last - slots + 1;
  const byIndex = new Map(history.buckets.map((b) => [Math.floor(b.start / width), b]));
  const W = 720, H = 220, left = 36, right = 44, top = 8, bottom = 20;
  const plotW = W - left - right, plotH = H - top - bottom;
  let maxRequests = 1, maxLatency = 1, total = 0, failovers = 0, errors = 0;
  for (const b of history.buckets) {
    maxRequests = Math.max(maxRequests, b.requests);
    maxLatency = Math.max(maxLatency, b.latency_p95_ms || 0);
    total += b.requests;
    failovers += b.failovers;
    errors += b.server_errors;
  }
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  root.append(svg("line", { class: "axis", x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH }));
  const barW = plotW / slots;
  const y = (n) => top + plotH - (n / maxRequests) * plotH;
  const yLatency = (ms) => top + plotH - (ms / maxLatency) * plotH;
  const p50 = [], p95 = [];
  for (let i = first; i <= last; i++) {
    const b = byIndex.get(i);
    if (!b) continue;
    const x = left + (i - first) * barW;
    const bar = (cls, n) =>
      root.append(svg("rect", { class: cls, x: x, y: y(n), width: Math.max(barW - 0.5, 0.5), height: top + plotH - y(n) }));
    bar("requests", b.requests);
    if (b.failovers) bar("failovers", b.failovers);
    if (b.server_errors) bar("errors", b.server_errors);
    const mid = x + barW / 2;
    if (b.latency_p50_ms != null) p50.push(`${mid},${yLatency(b.latency_p50_ms)}`);
    if (b.latency_p95_ms != null) p95.push(`${mid},${yLatency(b.latency_p95_ms)}`);
  }
  for (const [cls, points] of [["p50", p50], ["p95", p95]]) {
    if (points.length > 1) root.append(svg("polyline", { class: cls, points: points.join(" ") }));
    // One bucket makes no line: a dot shows it.
    if (points.length === 1) {
      const [cx, cy] = points[0].split(",");
      root.append(svg("circle", { class: cls, cx, cy, r: 2.5 }));
    }
  }
  const label = (x, y, text, anchor) => {
    const t = svg("text", { x, y, "text-anchor": anchor });
    t.textContent = text;
    root.append(t);
  };
  label(left - 4, top + 10, String(maxRequests), "end");
  label(left - 4, top + plotH, "0", "end");
  label(W - right + 4, top + 10, Math.round(maxLatency) + " ms", "start");
  label(left, H - 4, "-60 min", "start");
  label(left + plotW, H - 4, "now", "end");
  const chart = $("chart");
  chart.replaceChildren(root);
  chart.dataset.requests = String(total);
  chart.dataset.failovers = String(failovers);
  $("history-summary").textContent =
    `${total} requests, ${errors} 5xx, ${failovers} failovers in the last hour ` +
    `(${width} s buckets; this process only)`;
}

// --- plugins -----------------------------------------------------------------------------

async function loadPlugins() {
  let list;
  try {
    list = await api("/admin/plugins");
  } catch (error) {
    if (error.status === 404) {
      replaceRows($("plugins"), []);
      throw new Error("this gateway has no plugin registry");
    }
    throw error;
  }
  const rows = list.data.map((p) =>
    el(
      "tr",
      { "data-plugin": p.name },
      el("td", {}, p.name),
      el("td", {}, p.kind),
      el("td", {}, p.version),
      el("td", {}, when(p.loaded_at)),
      el("td", {}, p.calls),
      el("td", {}, (p.used_by || []).join(", ")),
    ),
  );
  replaceRows($("plugins"), rows);
}

// --- keys --------------------------------------------------------------------------------

async function loadKeys() {
  const [keys, usage] = await Promise.all([
    api("/admin/keys?limit=100"),
    api("/admin/usage?group_by=key"),
  ]);
  const byKey = new Map(usage.data.map((row) => [row.key_id, row]));
  const rows = keys.data.map((k) => {
    const u = byKey.get(k.id) || {};
    return el(
      "tr",
      { "data-key": k.id },
      el("td", {}, k.id + " (" + k.hint + ")"),
      el("td", {}, k.name || ""),
      el("td", {}, k.team || ""),
      el("td", {}, u.requests ?? 0),
      el("td", {}, (u.input_tokens ?? 0) + " / " + (u.output_tokens ?? 0)),
      el("td", {}, u.spend_usd ?? 0),
      el("td", {}, k.revoked_at ? "revoked " + when(k.revoked_at) : "active"),
    );
  });
  const open = byKey.get("-");
  if (open) {
    rows.push(
      el(
        "tr",
        { "data-key": "-" },
        el("td", {}, "(no key)"),
        el("td", {}),
        el("td", {}),
        el("td", {}, open.requests),
        el("td", {}, open.input_tokens + " / " + open.output_tokens),
        el("td", {}, open.spend_usd),
        el("td", {}),
      ),
    );
  }
  replaceRows($("keys"), rows);
  $("keys-note").textContent = keys.has_more ? "the first 100 keys" : "";
}

// --- conversations -----------------------------------------------------------------------

async function loadNamespaces() {
  await guarded(async () => {
    const list = await api("/admin/namespaces");
    const select = $("namespace");
    const chosen = select.value;
    select.replaceChildren(
      ...list.data.map((n) => el("option", { value: n.namespace }, n.namespace + " (" + n.conversations + ")")),
    );
    if (list.data.some((n) => n.namespace === chosen)) select.value = chosen;
    await loadConversations();
  }, $("conversations-note"));
}

async function loadConversations() {
  const namespace = $("namespace").value;
  $("items").replaceChildren();
  if (!namespace) {
    $("conversations").replaceChildren();
    return;
  }
  const list = await api("/admin/conversations?limit=50&namespace=" + encodeURIComponent(namespace));
  $("conversations").replaceChildren(
    ...list.data.map((c) => {
      const title = c.metadata && c.metadata.title ? c.metadata.title + " · " : "";
      const button = el("button", { type: "button", "data-conversation": c.id }, title + c.id + " · " + when(c.created_at));
      button.addEventListener("click", () => guarded(() => openConversation(namespace, c.id, button), $("conversations-note")));
      return el("li", {}, button);
    }),
  );
}

// The text of an item's content parts, or the item as JSON for other kinds.
function itemText(item) {
  if (Array.isArray(item.content)) {
    return item.content.map((part) => part.text ?? part.refusal ?? JSON.stringify(part)).join("\n");
  }
  if (typeof item.content === "string") return item.content;
  if (item.type === "function_call") return item.name + "(" + (item.arguments || "") + ")";
  if (item.output !== undefined) return typeof item.output === "string" ? item.output : JSON.stringify(item.output);
  return JSON.stringify(item);
}

async function openConversation(namespace, id, button) {
  for (const other of document.querySelectorAll("#conversations button")) other.classList.remove("selected");
  button.classList.add("selected");
  const path =
    "/admin/conversations/" + encodeURIComponent(id) + "/items?order=asc&limit=100&namespace=" + encodeURIComponent(namespace);
  const list = await api(path);
  $("items").replaceChildren(
    el("h3", {}, id),
    ...list.data.map((item) =>
      el(
        "div",
        { class: "item", "data-item": item.id },
        el("span", { class: "role" }, item.role || item.type),
        item.agent ? el("span", { class: "muted" }, " · " + item.agent) : "",
        el("pre", { class: "text" }, itemText(item)),
      ),
    ),
    list.has_more ? el("p", { class: "muted" }, "the first 100 items") : "",
  );
}

// --- start -------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("admin-key").value.trim();
    $("admin-key").value = "";
    if (!key) return;
    sessionStorage.setItem(KEY, key);
    signIn();
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("namespace").addEventListener("change", () => guarded(loadConversations, $("conversations-note")));
  $("namespaces-reload").addEventListener("click", loadNamespaces);
  if (sessionStorage.getItem(KEY)) signIn();
});
