// streamer metrics page: scrapes /metrics (the Prometheus text format) on
// an interval and plots the key series, computed in the browser the way
// PromQL would: rates from counter deltas, quantiles from histogram bucket
// deltas over each interval. No library, no build step.

const params = new URLSearchParams(location.search);
const interval = Math.min(Math.max(Number(params.get("interval")) || 2000, 200), 60000);
const keep = 150; // points per chart

// parse returns Map(series name → [{labels, value}]) from exposition text.
export function parse(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
    }
    const value = Number(m[4]); // "+Inf", "NaN" parse too
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

// sum adds the samples of name whose labels match want.
function sum(scrape, name, want = {}) {
  let total = 0, found = false;
  for (const s of scrape.get(name) || []) {
    if (Object.entries(want).every(([k, v]) => s.labels[k] === v)) {
      total += s.value;
      found = true;
    }
  }
  return found ? total : null;
}

// buckets returns the cumulative bucket counts of a histogram by le.
function buckets(scrape, name, want = {}) {
  const by = new Map();
  for (const s of scrape.get(name + "_bucket") || []) {
    if (!Object.entries(want).every(([k, v]) => s.labels[k] === v)) continue;
    const le = Number(s.labels.le);
    by.set(le, (by.get(le) || 0) + s.value);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]);
}

// quantile estimates the q-quantile of the observations between two
// scrapes, interpolating linearly inside a bucket (as histogram_quantile
// does). null when nothing was observed.
export function quantile(q, before, after) {
  const prev = new Map(before);
  const delta = after.map(([le, c]) => [le, c - (prev.get(le) || 0)]);
  const total = delta.length ? delta[delta.length - 1][1] : 0;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const [le, c] of delta) {
    if (c >= rank) {
      if (le === Infinity) return lower;
      return lower + (le - lower) * ((rank - below) / Math.max(c - below, 1e-12));
    }
    lower = le;
    below = c;
  }
  return lower;
}

// rate is the per-second increase of a counter between two scrapes; a
// counter that went down was reset (a restart) and counts from zero.
function rate(before, after, seconds) {
  if (before === null || after === null || seconds <= 0) return null;
  return (after >= before ? after - before : after) / seconds;
}

function fmt(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  if (unit === "s") {
    if (v < 0.001) return (v * 1e6).toFixed(0) + " µs";
    if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 2 : 1) + " ms";
    return v.toFixed(2) + " s";
  }
  if (unit === "/s") return (v >= 100 ? v.toFixed(0) : v.toFixed(1)) + "/s";
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

const svgNS = "http://www.w3.org/2000/svg";
function el(name, attrs, text) {
  const e = document.createElementNS(svgNS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// Chart is one panel: a main series, an optional second one, and the
// current value of the main one. Its section, id "chart-" + name, is made
// from the page's chart-panel template and put before the totals.
class Chart {
  constructor({ name, title, help, label, unit }) {
    this.section = document.getElementById("chart-panel").content.firstElementChild.cloneNode(true);
    this.section.id = `chart-${name}`;
    this.section.setAttribute("aria-labelledby", `h-${name}`);
    const h2 = this.section.querySelector("h2");
    h2.id = `h-${name}`;
    h2.textContent = title;
    this.section.querySelector(".help").textContent = help;
    this.svg = this.section.querySelector("svg");
    this.svg.setAttribute("aria-label", label);
    this.now = this.section.querySelector("[data-now]");
    document.querySelector("#charts > .counters").before(this.section);
    this.unit = unit;
    this.main = [];
    this.second = [];
  }

  push(main, second = null) {
    this.main.push(main);
    this.second.push(second);
    if (this.main.length > keep) {
      this.main.shift();
      this.second.shift();
    }
    this.now.textContent = fmt(main, this.unit);
    this.section.dataset.value = main === null ? "" : String(main);
    this.section.dataset.max = String(Math.max(0, ...this.main.filter((v) => v !== null)));
    this.draw();
  }

  draw() {
    const w = 600, h = 160, top = 14, bottom = 6;
    const values = [...this.main, ...this.second].filter((v) => v !== null);
    const max = values.length ? Math.max(...values) * 1.1 || 1 : 1;
    this.svg.replaceChildren();
    for (const f of [0, 0.5, 1]) {
      const y = top + (h - top - bottom) * (1 - f);
      this.svg.append(el("line", { class: "grid", x1: 0, x2: w, y1: y, y2: y }));
    }
    this.svg.append(el("text", { class: "axis", x: 4, y: 11 }, fmt(max, this.unit)));
    const path = (series) => {
      const step = w / (keep - 1);
      const x0 = w - step * (series.length - 1);
      let d = "", pen = false;
      series.forEach((v, i) => {
        if (v === null) { pen = false; return; }
        const x = x0 + i * step, y = top + (h - top - bottom) * (1 - v / max);
        d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)} `;
        pen = true;
      });
      return d.trim();
    };
    const second = path(this.second);
    if (second) this.svg.append(el("path", { class: "second", d: second }));
    const main = path(this.main);
    if (main) this.svg.append(el("path", { class: "main", d: main }));
  }
}

// The charts, in page order: name (the section is "chart-" + name), unit,
// title, help line, and the label a screen reader says for the plot.
const charts = Object.fromEntries([
  ["connections", "", "SSE connections", "streamer_sse_connections; live subscribers (replay done) dashed.",
    "SSE connections over the last minutes"],
  ["deliveries", "/s", "Deliveries /s", "rate of streamer_events_delivered_total; publishes /s dashed.",
    "Deliveries per second over the last minutes"],
  ["lag", "s", "Delivery lag p99", "streamer_delivery_lag_seconds, commit to socket write, per scrape interval; p50 dashed.",
    "Delivery lag p99 over the last minutes"],
  ["reads", "s", "Database read p99", "streamer_db_read_duration_seconds of live reads, per scrape interval; then reads /s.",
    "Database read time p99 over the last minutes"],
].map(([name, unit, title, help, label]) => [name, new Chart({ name, unit, title, help, label })]));

const totals = [
  "streamer_events_delivered_total", "streamer_publish_events_total", "streamer_replays_total",
  "streamer_slow_consumer_disconnects_total", "streamer_listener_reconnects_total",
  "streamer_auth_failures_total", "streamer_pruned_events_total", "streamer_db_reads_total",
];

function showTotals(scrape) {
  const dl = document.getElementById("totals");
  dl.replaceChildren();
  for (const name of totals) {
    const v = sum(scrape, name);
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = fmt(v, "");
    dd.dataset.series = name;
    dl.append(dt, dd);
  }
}

function setState(state, text) {
  const pill = document.getElementById("scrape-state");
  pill.dataset.state = state;
  pill.textContent = text;
}

let last = null; // {scrape, at}
let samples = 0;

async function tick() {
  let scrape;
  const at = performance.now();
  try {
    const resp = await fetch("/metrics", { cache: "no-store" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    scrape = parse(await resp.text());
  } catch (err) {
    setState("closed", `scrape failed: ${err.message}`);
    return;
  }
  setState("open", `every ${interval / 1000} s`);
  document.getElementById("scraped-at").textContent = new Date().toLocaleTimeString();

  charts.connections.push(sum(scrape, "streamer_sse_connections"), sum(scrape, "streamer_subscribers_live"));
  if (last) {
    const secs = (at - last.at) / 1000;
    const r = (name, want) => rate(sum(last.scrape, name, want), sum(scrape, name, want), secs);
    charts.deliveries.push(r("streamer_events_delivered_total"), r("streamer_publish_events_total"));
    const lag = (q) => quantile(q, buckets(last.scrape, "streamer_delivery_lag_seconds"), buckets(scrape, "streamer_delivery_lag_seconds"));
    charts.lag.push(lag(0.99), lag(0.5));
    const live = { kind: "live" };
    charts.reads.push(
      quantile(0.99, buckets(last.scrape, "streamer_db_read_duration_seconds", live), buckets(scrape, "streamer_db_read_duration_seconds", live)),
      null,
    );
    charts.reads.now.textContent += ` · ${fmt(r("streamer_db_reads_total"), "/s")}`;
  }
  showTotals(scrape);
  last = { scrape, at };
  samples++;
  document.getElementById("charts").dataset.samples = String(samples);
}

async function loop() {
  for (;;) {
    await tick();
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
loop();
