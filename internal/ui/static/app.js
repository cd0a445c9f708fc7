// The inspector page: reads /events with fetch and its own SSE parser, so it
// shows every event type without being told which to expect (EventSource
// fires only the listeners of types it was given), and publishes through
// POST /publish when the server has it. Applications use /streamer.js; the
// inspector takes only its reconnect backoff from it.

import { backoffDelay } from "/streamer.js";

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
  get SSEParser() { return SSEParser; },
};

// ---- reading the stream -----------------------------------------------------

// streamer's server events, shown as rows of their own.
const SERVER_ROWS = {
  "streamer.gap": "gap",
  "streamer.reauth": "reauth",
  "streamer.shutdown": "shutdown",
};

// Statuses after which a new connection would fail the same way.
const PERMANENT = new Set([400, 401, 403, 404, 405, 410, 422]);
const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

// SSEParser follows the HTML standard's event stream interpretation
// (https://html.spec.whatwg.org/multipage/server-sent-events.html): lines end
// with CRLF, LF or CR; a line starting with ":" is a comment; the fields are
// event, data, id and retry, anything else is ignored; a blank line
// dispatches an event only when it has data, and always makes the id seen so
// far the last event id (so an id-only frame moves it without an event).
export class SSEParser {
  #buf = "";
  #cr = false;     // the previous chunk ended with CR: a leading LF is its pair
  #first = true;   // a leading BOM is dropped
  #data = "";
  #type = "";
  #id;             // the last event id buffer
  #onEvent;
  #onId;
  #onRetry;

  /**
   * @param {object} o
   * @param {string} [o.lastEventId] the last event id to start from
   * @param {function({id, type, data})} o.onEvent
   * @param {function(string)} [o.onId]    the last event id changed
   * @param {function(number)} [o.onRetry] a retry field, in ms
   */
  constructor(o) {
    this.#id = o.lastEventId ?? "";
    this.#onEvent = o.onEvent;
    this.#onId = o.onId ?? (() => {});
    this.#onRetry = o.onRetry ?? (() => {});
  }

  get lastEventId() { return this.#id; }

  /** Feeds decoded text; calls back for each complete line. */
  feed(text) {
    if (this.#first && text.length > 0) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#cr && text.startsWith("\n")) text = text.slice(1);
    this.#cr = false;
    let buf = this.#buf + text;
    let start = 0;
    for (;;) {
      const m = /\r\n|\r|\n/g;
      m.lastIndex = start;
      const hit = m.exec(buf);
      if (!hit) break;
      // A CR at the very end may be the first half of a CRLF.
      if (hit[0] === "\r" && hit.index === buf.length - 1) this.#cr = true;
      this.#line(buf.slice(start, hit.index));
      start = hit.index + hit[0].length;
    }
    this.#buf = buf.slice(start);
  }

  #line(line) {
    if (line === "") {
      this.#dispatch();
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    let field = line, value = "";
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
    }
    switch (field) {
      case "event":
        this.#type = value;
        break;
      case "data":
        this.#data += value + "\n";
        break;
      case "id":
        if (!value.includes("\0")) this.#id = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.#onRetry(Number(value));
        break;
    }
  }

  #dispatch() {
    this.#onId(this.#id);
    if (this.#data === "") {
      this.#type = "";
      return;
    }
    const ev = { id: this.#id, type: this.#type || "message", data: this.#data.slice(0, -1) };
    this.#data = "";
    this.#type = "";
    this.#onEvent(ev);
  }
}

// Reader subscribes to streams over fetch, resuming with Last-Event-ID after
// every disconnect (an ended response, a network error, a 5xx) with a
// backoff, and stopping for good on a refusal retrying cannot fix. The token
// is sent in the Authorization header, read again before every connection;
// without one the browser's cookie (same origin) is what the server sees.
class Reader {
  #streams;
  #token;
  #cb;
  #lastEventId;
  #state = "idle";
  #abort = null;
  #timer = 0;
  #failures = 0;
  #retryMs = 0;
  #closed = false;
  #stats = { opened: 0, created: 0, resumed: 0 };

  constructor(o) {
    this.#streams = o.streams;
    this.#token = o.token;
    this.#lastEventId = o.lastEventId ?? "";
    this.#cb = o;
    this.#run();
  }

  get lastEventId() { return this.#lastEventId; }
  get state() { return this.#state; }
  get streams() { return [...this.#streams]; }
  /**
   * opened: responses that opened; created: requests made; resumed: requests
   * that carried a Last-Event-ID header.
   */
  get stats() { return { ...this.#stats }; }

  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#abort?.abort();
    this.#setState("closed");
  }

  get url() {
    const u = new URL("/events", location.href);
    for (const s of this.#streams) u.searchParams.append("stream", s);
    return u.href;
  }

  async #run() {
    this.#setState(this.#stats.created === 0 ? "connecting" : "reconnecting");
    const abort = new AbortController();
    this.#abort = abort;
    const headers = { Accept: "text/event-stream" };
    const token = this.#token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (this.#lastEventId) {
      headers["Last-Event-ID"] = this.#lastEventId;
      this.#stats.resumed++;
    }
    this.#stats.created++;
    let retryAfter = 0;
    try {
      const res = await fetch(this.url, { headers, cache: "no-store", signal: abort.signal });
      if (!res.ok) {
        retryAfter = Number(res.headers.get("Retry-After")) || 0;
        const message = await errorMessage(res);
        if (this.#closed) return;
        if (res.status === 401 && this.#stats.opened > 0) {
          // The token expired while subscribed (after a streamer.reauth, say):
          // keep trying from the last id, with whatever token is set by then.
          this.#cb.onError?.({ status: res.status, message, retrying: true });
          this.#retry(retryAfter);
          return;
        }
        if (PERMANENT.has(res.status)) {
          this.#setState("closed");
          this.#cb.onError?.({ status: res.status, message });
          return;
        }
        throw new Error(`HTTP ${res.status}: ${message}`);
      }
      this.#stats.opened++;
      this.#failures = 0;
      this.#setState("open");
      await this.#read(res.body);
    } catch (err) {
      if (this.#closed) return;
      console.debug("inspector: the stream broke:", err?.message ?? err);
    }
    if (this.#closed) return;
    this.#retry(retryAfter);
  }

  #retry(retryAfter) {
    this.#setState("reconnecting");
    this.#timer = setTimeout(() => {
      this.#timer = 0;
      this.#run();
    }, this.#backoff(retryAfter));
  }

  /** Reconnects at once if waiting to (a new token was set). */
  retryNow() {
    if (this.#closed || !this.#timer) return;
    clearTimeout(this.#timer);
    this.#timer = 0;
    this.#failures = 0;
    this.#run();
  }

  async #read(body) {
    const parser = new SSEParser({
      lastEventId: this.#lastEventId,
      onId: (id) => {
        if (id === this.#lastEventId) return;
        this.#lastEventId = id;
        this.#cb.onId?.(id);
      },
      onRetry: (ms) => { this.#retryMs = ms; },
      onEvent: (ev) => {
        let info = null;
        if (ev.type in SERVER_ROWS) {
          try { info = JSON.parse(ev.data); } catch { /* keep null */ }
        }
        this.#cb.onEvent({ ...ev, info, receivedAt: new Date() });
      },
    });
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done || this.#closed) return;
      parser.feed(value);
    }
  }

  #backoff(retryAfterSeconds) {
    const base = Math.max(MIN_BACKOFF_MS, this.#retryMs);
    return backoffDelay(this.#failures++, base, MAX_BACKOFF_MS, retryAfterSeconds);
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#cb.onState?.(state);
  }
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    if (typeof body?.error === "string") return body.error;
  } catch { /* not JSON */ }
  return res.statusText || `HTTP ${res.status}`;
}

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
  rememberInURL(streams, from);
  if (!$("pub-stream").value) $("pub-stream").value = streams[0];

  sub = new Reader({
    streams,
    lastEventId: from,
    // Read at every (re)connect: a token pasted later is used after a
    // streamer.reauth.
    token: () => sessionStorage.getItem(TOKEN_KEY) || "",
    onState: (state) => {
      setState(state);
      if (state === "open") {
        setLastId(sub?.lastEventId);
        showSubscribeError("");
      }
    },
    onEvent: (ev) => {
      const kind = SERVER_ROWS[ev.type];
      if (kind) addServerRow(ev, kind);
      else addRow(ev, streams.length === 1 ? streams[0] : null);
      setLastId(sub?.lastEventId);
    },
    onId: (id) => setLastId(id),
    onError: (err) => showSubscribeError(`The server refused the subscription (${err.status}): ${err.message}` +
      (err.retrying ? ". Set a fresh access token: the page keeps trying from the last id." : "")),
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

function rememberInURL(streams, from) {
  const q = new URLSearchParams();
  for (const s of streams) q.append("stream", s);
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
  if (event) body.event = event;
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
    sub?.retryNow();
  });

  // A link such as /?stream=orders:42&last_event_id=17 subscribes at once.
  const q = new URLSearchParams(location.search);
  const streams = q.getAll("stream");
  $("from").value = q.get("last_event_id") ?? "";
  probePublish();
  if (streams.length > 0) {
    $("streams").value = streams.join(", ");
    start();
  }
}

init();
