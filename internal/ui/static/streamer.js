// streamer.js: a small client for streamer's Server-Sent Events.
//
//   import { subscribe } from "/streamer.js";
//   const sub = subscribe({
//     streams: ["orders:42"],
//     types: ["order.paid"],        // typed events to receive besides untyped ones
//     lastEventId: "17",            // optional: a streamer.head() token or an event id
//     onEvent: (ev) => console.log(ev.id, ev.type, ev.data),
//     onGap: (gap) => reloadFromScratch(), // events after lastEventId were pruned
//   });
//   sub.lastEventId;                // resume token of the last event received
//   sub.close();
//
// Authorization: pass `token`, a string or a function returning a token (or a
// promise of one), called before every connection:
//
//   subscribe({
//     streams: ["user:alice"],
//     token: () => fetch("/my-app/streamer-token").then((r) => r.text()),
//     onEvent: (ev) => console.log(ev.data),
//   });
//
// The token travels as the access_token query parameter (EventSource cannot
// set headers). When it expires the server sends streamer.reauth and closes
// the connection; with a function this client asks it for a fresh token and
// reconnects from the last event id, missing nothing. With a string it can
// only retry the same token, which the server refuses once expired.
//
// The cookie alternative keeps the token out of URLs (and so out of proxy
// logs): have your server set it as an HttpOnly, Secure cookie named as
// STREAMER_AUTH_COOKIE (default streamer_token) on a domain that reaches
// streamer, pass no token, and set withCredentials: true when streamer is on
// another origin (listed in STREAMER_CORS_ORIGINS). Refresh the cookie
// before it expires; on streamer.reauth this client reconnects, sending
// whatever cookie the browser holds then.
//
// It wraps the browser's EventSource, so reconnecting and Last-Event-ID are the
// browser's own. It adds what EventSource leaves out: the resume token to start
// from, the last event id, a connection state, streamer's server events as
// their own callbacks, and a new connection when the browser gives up (it
// does after a non-200 answer, such as a 503 while a server drains).
//
// No dependencies, no build step; served by streamer at /streamer.js.

/** The server events of streamer, by their SSE type. */
const SERVER_EVENTS = new Set(["streamer.gap", "streamer.shutdown", "streamer.reauth"]);

/** Statuses after which a new connection would fail the same way. */
const PERMANENT = new Set([400, 401, 403, 404, 405, 410, 422]);

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30000;

/**
 * A subscription to one or more streams over one EventSource connection.
 *
 * Events dispatched on it (also given to the matching on* callback):
 *   "event"    detail: StreamerEvent   an application event
 *   "gap"      detail: ServerEvent     streamer.gap: events after the resume point
 *                                      were pruned by retention; info is
 *                                      {reason: "retention", oldest: <token>}:
 *                                      nothing after oldest is missing. It comes
 *                                      first, before the oldest retained event,
 *                                      and moves no id.
 *   "shutdown" detail: ServerEvent     streamer.shutdown: the server is draining
 *   "reauth"   detail: ServerEvent     streamer.reauth: the token expired; this
 *                                      client reconnects with a fresh one
 *   "state"    detail: {state}         "connecting" | "open" | "reconnecting" | "closed"
 *   "error"    detail: {status, message}  a refusal that retrying cannot fix
 *
 * StreamerEvent: {id, type, data, stream, receivedAt}. type is "message" for an
 * event published without a type. stream is the stream's name when the
 * subscription has exactly one stream, else null: the wire does not carry it.
 * ServerEvent: {type, data, info, id, receivedAt}; info is data parsed as JSON.
 */
export class Subscription extends EventTarget {
  #streams;
  #types = new Set();
  #base;
  #token;        // a string, or a function giving a token or a promise of one
  #currentToken = "";
  #authRetries = 0;
  #withCredentials;
  #callbacks;
  #lastEventId;
  #state = "idle";
  #es = null;
  #timer = 0;
  #probe = null;
  #failures = 0;
  #opened = 0;
  #created = 0;
  #closed = false;

  /**
   * @param {object} options
   * @param {string[]} options.streams     stream names (at least one)
   * @param {string[]} [options.types]     event types to receive besides untyped events
   * @param {string} [options.lastEventId] where to start: a token from streamer.head()
   *   or an event id; events after it are delivered. Empty: events from now on.
   * @param {string} [options.url]         the events endpoint, resolved against this
   *   module's URL (default "/events" on the server that served streamer.js)
   * @param {string|function(): (string|Promise<string>)} [options.token] the
   *   subscriber's JWT, sent as the access_token query parameter; a function is
   *   called before every connection (also after streamer.reauth) for a fresh one
   * @param {string} [options.accessToken] the same as a string token (older name)
   * @param {boolean} [options.withCredentials] EventSource's withCredentials
   */
  constructor(options = {}) {
    super();
    const streams = [...new Set(options.streams ?? [])].map(String);
    if (streams.length === 0) {
      throw new TypeError("streamer: subscribe needs at least one stream");
    }
    this.#streams = streams;
    this.#base = options.url ?? "/events";
    this.#token = options.token ?? options.accessToken ?? "";
    if (typeof this.#token !== "function") this.#currentToken = String(this.#token);
    this.#withCredentials = Boolean(options.withCredentials);
    this.#lastEventId = options.lastEventId ? String(options.lastEventId) : "";
    this.#callbacks = {
      event: options.onEvent,
      gap: options.onGap,
      shutdown: options.onShutdown,
      reauth: options.onReauth,
      state: options.onState,
      error: options.onError,
    };
    for (const t of options.types ?? []) this.#addType(t);
    this.#connect();
  }

  /** The resume token of the last event received (or the starting token). */
  get lastEventId() { return this.#lastEventId; }

  /** "connecting", "open", "reconnecting" or "closed". */
  get state() { return this.#state; }

  /** The subscribed stream names. */
  get streams() { return [...this.#streams]; }

  /** The typed events listened for, besides untyped ones. */
  get types() { return [...this.#types]; }

  /**
   * Counters: opened is how many times a connection opened (the first time,
   * then once per reconnect); created is how many EventSource objects were
   * made (more than one when the browser gave up, or a token function or a
   * streamer.reauth needed a new connection, and this client started over
   * from lastEventId).
   */
  get stats() { return { opened: this.#opened, created: this.#created }; }

  /** Receives events of type from now on, without reconnecting. */
  listen(type) {
    if (this.#addType(type) && this.#es) {
      this.#es.addEventListener(type, this.#onMessage);
    }
  }

  /** Closes the connection for good. */
  close() {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#probe?.abort();
    this.#probe = null;
    this.#es?.close();
    this.#es = null;
    this.#setState("closed");
  }

  /** The URL a new connection would use. */
  get url() {
    const u = new URL(this.#base, import.meta.url);
    for (const s of this.#streams) u.searchParams.append("stream", s);
    if (this.#lastEventId) u.searchParams.set("last_event_id", this.#lastEventId);
    if (this.#currentToken) u.searchParams.set("access_token", this.#currentToken);
    return u.href;
  }

  #addType(type) {
    type = String(type).trim();
    if (!type || type === "message" || SERVER_EVENTS.has(type) || this.#types.has(type)) {
      return false;
    }
    this.#types.add(type);
    return true;
  }

  /** Whether the token comes from a function: reconnects then need a fresh one. */
  get #dynamic() { return typeof this.#token === "function"; }

  #connect() {
    if (this.#dynamic) {
      this.#connectFresh();
    } else {
      this.#open();
    }
  }

  /** Asks the token function for a token, then opens the connection. */
  async #connectFresh() {
    if (this.#state !== "reconnecting") this.#setState("connecting");
    try {
      this.#currentToken = String((await this.#token()) ?? "");
    } catch {
      if (this.#closed) return;
      // The application could not give a token now: try again later.
      this.#setState("reconnecting");
      this.#timer = setTimeout(() => this.#connect(), this.#backoff(0));
      return;
    }
    if (this.#closed) return;
    this.#open();
  }

  #open() {
    const es = new EventSource(this.url, { withCredentials: this.#withCredentials });
    this.#es = es;
    this.#created++;
    if (this.#state !== "reconnecting") this.#setState("connecting");
    es.onopen = () => {
      if (es !== this.#es) return;
      this.#failures = 0;
      this.#authRetries = 0;
      this.#opened++;
      this.#setState("open");
    };
    es.onerror = () => {
      if (es !== this.#es) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself, sending Last-Event-ID (and the
        // token it had: if that expired meanwhile, the 401 brings us to
        // #recover, which asks a token function for a fresh one).
        this.#setState("reconnecting");
      } else {
        // The browser gave up (a non-200 answer): find out why, then start over.
        this.#recover(es);
      }
    };
    es.onmessage = this.#onMessage;
    for (const t of this.#types) es.addEventListener(t, this.#onMessage);
    for (const t of SERVER_EVENTS) es.addEventListener(t, this.#onServerEvent);
  }

  #onMessage = (e) => {
    if (e.target !== this.#es) return;
    if (e.lastEventId) this.#lastEventId = e.lastEventId;
    this.#emit("event", {
      id: e.lastEventId,
      type: e.type,
      data: e.data,
      stream: this.#streams.length === 1 ? this.#streams[0] : null,
      receivedAt: new Date(),
    });
  };

  #onServerEvent = (e) => {
    if (e.target !== this.#es) return;
    if (e.lastEventId) this.#lastEventId = e.lastEventId;
    let info = null;
    try { info = JSON.parse(e.data); } catch { /* keep null */ }
    const name = { "streamer.gap": "gap", "streamer.shutdown": "shutdown", "streamer.reauth": "reauth" }[e.type];
    this.#emit(name, { type: e.type, data: e.data, info, id: e.lastEventId, receivedAt: new Date() });
    if (name === "reauth" && this.#es === e.target) {
      // The server closes this connection now: open the next one with a
      // fresh token (or the cookie the browser holds now), from the last id.
      e.target.close();
      this.#es = null;
      this.#setState("reconnecting");
      this.#connect();
    }
  };

  async #recover(es) {
    es.close();
    this.#es = null;
    this.#setState("reconnecting");
    // EventSource hides the status; ask again with fetch to learn it.
    const probe = new AbortController();
    this.#probe = probe;
    let status = 0, message = "", retryAfter = 0;
    try {
      const res = await fetch(this.url, {
        headers: { Accept: "text/event-stream" },
        cache: "no-store",
        credentials: this.#withCredentials ? "include" : "same-origin",
        signal: probe.signal,
      });
      status = res.status;
      retryAfter = Number(res.headers.get("Retry-After")) || 0;
      if (res.ok) {
        probe.abort(); // it works again: leave this stream to the new EventSource
      } else {
        message = await errorMessage(res);
      }
    } catch (err) {
      if (this.#probe !== probe) return; // closed meanwhile
      message = String(err?.message ?? err);
    }
    if (this.#probe !== probe) return;
    this.#probe = null;
    // A refused token may be stale: a token function gets one more chance
    // to give a fresh one.
    if (status === 401 && this.#dynamic && this.#authRetries++ === 0) {
      this.#timer = setTimeout(() => {
        if (this.#state !== "closed") this.#connect();
      }, this.#backoff(retryAfter));
      return;
    }
    if (PERMANENT.has(status)) {
      this.#setState("closed");
      this.#emit("error", { status, message });
      return;
    }
    // Also after a 200: the probe's own stream needs a moment to close.
    const wait = this.#backoff(retryAfter);
    this.#timer = setTimeout(() => {
      if (this.#state !== "closed") this.#connect();
    }, wait);
  }

  #backoff(retryAfterSeconds) {
    return backoffDelay(this.#failures++, MIN_BACKOFF_MS, MAX_BACKOFF_MS, retryAfterSeconds);
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit("state", { state });
  }

  #emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
    const cb = this.#callbacks[name];
    if (typeof cb === "function") cb(name === "state" ? detail.state : detail);
  }
}

/**
 * The wait before a new connection after `failures` failed ones in a row, in
 * ms: `baseMs` doubled per failure up to `maxMs`, less a random part of up
 * to half (so that clients cut off together do not come back together),
 * and never shorter than a Retry-After of `retryAfterSeconds`. The
 * inspector page reconnects with it too.
 */
export function backoffDelay(failures, baseMs, maxMs, retryAfterSeconds = 0) {
  const exp = Math.min(maxMs, baseMs * 2 ** failures);
  const jittered = exp / 2 + Math.random() * (exp / 2);
  return Math.max(jittered, retryAfterSeconds * 1000);
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    if (body && typeof body.error === "string") return body.error;
  } catch { /* not JSON */ }
  return `HTTP ${res.status}`;
}

/**
 * Subscribes to streams; see Subscription for the options and events.
 * onEvent(ev), onGap(ev), onShutdown(ev), onState(state), onError({status, message})
 * are optional callbacks.
 */
export function subscribe(options) {
  return new Subscription(options);
}
