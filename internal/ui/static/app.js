// The inspector page: subscribes with /streamer.js (native EventSource) and
// shows what arrives; publishes through POST /publish when the server has it.
import { subscribe } from "/streamer.js";

const MAX_ROWS = 1000;
const TOKEN_KEY = "streamer.accessToken";
// The contract's stream name rule, as the server and the database check it.
const STREAM_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:/@=+-]{0,199}$/;
const EVENT_TYPE = /^[A-Za-z0-9_.:-]{1,64}$/;

const $ = (id) => document.getElementById(id);
const list = (s) => s.split(/[\s,]+/).filter(Boolean);

const STATE_TEXT = {
  idle: "not subscribed",
  connecting: "connecting…",
  open: "open",
  reconnecting: "reconnecting…",
  closed: "closed",
};

let sub = null;
let received = 0;

// For a look from the browser console: inspector.subscription.lastEventId.
window.inspector = {
  get subscription() { return sub; },
  get received() { return received; },
};

// ---- subscribing ------------------------------------------------------------

function setState(state) {
  const pill = $("state");
  pill.dataset.state = state;
  pill.textContent = STATE_TEXT[state] ?? state;
  const active = state !== "idle" && state !== "closed";
  $("disconnect").disabled = !active;
}

function setLastId(id) {
  $("last-id").textContent = id || "—";
}

function showSubscribeError(message) {
  const el = $("subscribe-error");
  el.textContent = message;
  el.hidden = !message;
}

function start() {
  showSubscribeError("");
  const streams = list($("streams").value);
  const types = list($("types").value);
  const from = $("from").value.trim();
  if (streams.length === 0) {
    showSubscribeError("Enter at least one stream name.");
    $("streams").focus();
    return;
  }
  const bad = streams.find((s) => !STREAM_NAME.test(s));
  if (bad) {
    showSubscribeError(`"${bad}" is not a stream name: 1–200 characters from A–Z a–z 0–9 _ . : / @ = + -, starting with a letter or digit.`);
    $("streams").focus();
    return;
  }
  stop();
  rememberInURL(streams, types, from);
  if (!$("pub-stream").value) $("pub-stream").value = streams[0];

  sub = subscribe({
    streams,
    types,
    lastEventId: from,
    // Read at every (re)connect: a token pasted later is used after a
    // streamer.reauth.
    token: () => sessionStorage.getItem(TOKEN_KEY) || "",
    onState: (state) => {
      setState(state);
      if (state === "open") setLastId(sub?.lastEventId);
    },
    onEvent: (ev) => {
      addRow(ev, ev.stream);
      setLastId(ev.id);
    },
    onGap: (ev) => {
      addServerRow(ev, "gap");
      setLastId(sub?.lastEventId);
    },
    onShutdown: (ev) => addServerRow(ev, "shutdown"),
    onReauth: (ev) => addServerRow(ev, "reauth"),
    onError: (err) => showSubscribeError(`The server refused the subscription (${err.status}): ${err.message}`),
  });
  setLastId(sub.lastEventId);
}

function stop() {
  if (sub) {
    sub.close();
    sub = null;
  }
  setState("idle");
}

function rememberInURL(streams, types, from) {
  const q = new URLSearchParams();
  for (const s of streams) q.append("stream", s);
  for (const t of types) q.append("type", t);
  if (from) q.set("last_event_id", from);
  history.replaceState(null, "", `${location.pathname}?${q}`);
}

// ---- the event table --------------------------------------------------------

function time(d) {
  const p = (n, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function cell(tr, cls, text, title) {
  const td = document.createElement("td");
  td.className = cls;
  if (cls === "c-data") {
    const pre = document.createElement("pre");
    pre.textContent = text;
    td.append(pre);
  } else {
    td.textContent = text;
  }
  if (title) td.title = title;
  tr.append(td);
  return td;
}

function insertRow(tr) {
  const body = $("events");
  body.prepend(tr);
  while (body.rows.length > MAX_ROWS) body.lastElementChild.remove();
  $("empty").hidden = true;
  const shown = body.rows.length;
  $("count").textContent = `${received} received` + (shown < received ? ` · latest ${shown} shown` : "");
}

function addRow(ev, stream) {
  received++;
  const tr = document.createElement("tr");
  tr.className = "event";
  tr.dataset.id = ev.id;
  tr.dataset.type = ev.type;
  cell(tr, "c-time", time(ev.receivedAt));
  cell(tr, "c-id", ev.id || "—");
  const type = cell(tr, "c-type", "");
  const badge = document.createElement("span");
  badge.className = ev.type === "message" ? "type untyped" : "type";
  badge.textContent = ev.type;
  type.append(badge);
  cell(tr, "c-stream", stream ?? "—",
    stream ? "" : "The wire does not name the stream; subscribe to one stream to see it");
  cell(tr, "c-data", ev.data);
  insertRow(tr);
}

function addServerRow(ev, kind) {
  received++;
  const tr = document.createElement("tr");
  tr.className = `server ${kind}`;
  tr.dataset.type = ev.type;
  cell(tr, "c-time", time(ev.receivedAt));
  cell(tr, "c-id", "—");
  const type = cell(tr, "c-type", "");
  const badge = document.createElement("span");
  badge.className = `type server-${kind}`;
  badge.textContent = ev.type;
  type.append(badge);
  const what = {
    gap: "Events after the resume point were pruned by retention; delivery continues with the oldest retained event." +
      (ev.info?.oldest ? ` Nothing after ${ev.info.oldest} is missing.` : ""),
    shutdown: "The server is shutting down; the browser reconnects and resumes from the last id.",
    reauth: "The token expired; reconnecting with the token set below, from the last id.",
  }[kind];
  cell(tr, "c-stream", "—");
  cell(tr, "c-data", `${what}\n${ev.data}`);
  insertRow(tr);
}

function clearRows() {
  $("events").replaceChildren();
  received = 0;
  $("count").textContent = "0 received";
  $("empty").hidden = false;
}

// ---- publishing -------------------------------------------------------------

const SQL_EXAMPLE = "SELECT streamer.publish('stream', 'data');";

function publishURL() {
  return new URL("/publish", location.href);
}

// publishHeaders: a publisher's token goes in the Authorization header only
// (the server never reads it from the URL for POST /publish).
function publishHeaders() {
  const h = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

function setPublishResult(text, kind) {
  const el = $("publish-result");
  el.textContent = text;
  el.dataset.kind = kind;
}

function publishUnavailable() {
  $("publish-panel").dataset.publish = "unavailable";
  $("publish-fields").disabled = true;
  setPublishResult(`This server has no POST /publish. Publish with SQL: ${SQL_EXAMPLE}`, "info");
}

async function errorText(res) {
  try {
    const body = await res.json();
    if (typeof body?.error === "string") return body.error;
    return JSON.stringify(body);
  } catch {
    return res.statusText;
  }
}

async function explain(res) {
  const message = await errorText(res);
  switch (res.status) {
    case 401:
    case 403:
      return `${res.status}: ${message}. Or publish with SQL: ${SQL_EXAMPLE}`;
    case 503: {
      const after = res.headers.get("Retry-After");
      return `503: ${message}` + (after ? ` (retry after ${after} s)` : "");
    }
    default:
      return `${res.status}: ${message}`;
  }
}

// probePublish asks whether the server has POST /publish and lets us use it,
// with an event that has no stream: a request that can never publish.
async function probePublish() {
  let res;
  try {
    res = await fetch(publishURL(), {
      method: "POST",
      headers: publishHeaders(),
      body: "{}",
    });
  } catch {
    return; // the server may be restarting: leave the form as it is
  }
  const panel = $("publish-panel");
  switch (res.status) {
    case 404:
    case 405:
      publishUnavailable();
      break;
    // The state last, once the explanation is shown: it is what a reader
    // (and the browser tests) wait for.
    case 401:
    case 403:
      setPublishResult(await explain(res), "info");
      panel.dataset.publish = "forbidden";
      break;
    case 503:
      setPublishResult(await explain(res), "info");
      panel.dataset.publish = "busy";
      break;
    default:
      panel.dataset.publish = "available";
  }
}

async function publish() {
  const stream = $("pub-stream").value.trim();
  const event = $("pub-event").value.trim();
  const data = $("pub-data").value;
  if (!STREAM_NAME.test(stream)) {
    setPublishResult("Enter a valid stream name.", "error");
    $("pub-stream").focus();
    return;
  }
  if (event && !EVENT_TYPE.test(event)) {
    setPublishResult("An event type is 1–64 characters from A–Z a–z 0–9 _ . : -", "error");
    $("pub-event").focus();
    return;
  }
  const body = { stream, data };
  if (event) {
    body.event = event;
    watchType(event);
  }
  $("publish").disabled = true;
  setPublishResult("Publishing…", "info");
  try {
    const res = await fetch(publishURL(), {
      method: "POST",
      headers: publishHeaders(),
      body: JSON.stringify(body),
    });
    if (res.ok) {
      const out = await res.json();
      const ids = out?.ids ?? [];
      $("publish-panel").dataset.publish = "available";
      setPublishResult(`Published: id ${ids.join(", ")}`, "ok");
    } else if (res.status === 404 || res.status === 405) {
      publishUnavailable();
    } else {
      setPublishResult(await explain(res), "error");
    }
  } catch (err) {
    setPublishResult(`Could not reach the server: ${err.message}`, "error");
  } finally {
    $("publish").disabled = false;
  }
}

// watchType makes a type just published visible in the table.
function watchType(type) {
  if (!sub || sub.types.includes(type)) return;
  sub.listen(type);
  const types = list($("types").value);
  if (!types.includes(type)) $("types").value = [...types, type].join(", ");
}

// ---- wiring -----------------------------------------------------------------

function init() {
  $("subscribe-form").addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  $("disconnect").addEventListener("click", stop);
  $("clear").addEventListener("click", clearRows);
  $("publish-form").addEventListener("submit", (e) => {
    e.preventDefault();
    publish();
  });
  $("pub-data").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      publish();
    }
  });

  const token = $("token");
  token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
  token.addEventListener("change", () => {
    const v = token.value.trim();
    if (v) sessionStorage.setItem(TOKEN_KEY, v);
    else sessionStorage.removeItem(TOKEN_KEY);
  });

  // A link such as /?stream=orders:42&type=order.paid subscribes at once.
  const q = new URLSearchParams(location.search);
  const streams = q.getAll("stream");
  $("types").value = q.getAll("type").join(", ");
  $("from").value = q.get("last_event_id") ?? "";
  probePublish();
  if (streams.length > 0) {
    $("streams").value = streams.join(", ");
    start();
  }
}

init();
