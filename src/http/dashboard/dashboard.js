// deno-lint-ignore-file no-window -- browser code: `window` is the page's global
// pulsedb dashboard: charts one user's heart rate from GET /metrics/heart-rate with uPlot.
// Plain browser JavaScript, no build step. The view lives in the URL's query string, so it can be
// shared; the user id is remembered in localStorage, the access token in sessionStorage only.
(() => {
  "use strict";

  const API = "metrics/heart-rate";
  /** The API's bucket sizes, smallest first, with their widths in ms. */
  const BUCKETS = [
    ["10s", 10e3],
    ["30s", 30e3],
    ["1m", 60e3],
    ["5m", 300e3],
    ["15m", 900e3],
    ["30m", 1800e3],
    ["1h", 3600e3],
    ["6h", 21600e3],
    ["1d", 86400e3],
  ];
  const BUCKET_MS = new Map(BUCKETS);
  /** Auto bucket: the smallest whose bucket count for the range stays within this. */
  const MAX_POINTS = 1500;
  const LIVE_MS = 5000;
  const HOUR = 3600e3;
  const DAY = 24 * HOUR;
  const PRESETS = ["1h", "today", "7d", "30d", "1y"];
  /** Device colours (Okabe-Ito: distinguishable with common colour-vision deficiencies). */
  const PALETTE = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7a6a00", "#444444"];
  const LINE = "#5b6675";
  const USER_KEY = "pulsedb.user";
  const TOKEN_KEY = "pulsedb.token";

  const $ = (id) => document.getElementById(id);
  const el = {
    form: $("controls"),
    user: $("user"),
    tokenField: $("token-field"),
    token: $("token"),
    from: $("from"),
    to: $("to"),
    apply: $("apply"),
    bucket: $("bucket"),
    device: $("device"),
    devices: $("devices"),
    live: $("live"),
    liveHint: $("live-hint"),
    title: $("view-title"),
    summary: $("summary"),
    legend: $("legend"),
    status: $("status"),
    chart: $("chart"),
    readout: $("readout"),
  };
  const authOn = document.querySelector('meta[name="pulsedb-auth"]')?.getAttribute("content") === "on";

  /** The view: what is charted. `range` is a preset name, or null with `start`/`end` (ms) set. */
  const view = { user: "", range: "today", start: 0, end: 0, bucket: "auto", device: "", live: false };

  let plot = null;
  /** The x range (seconds) of the chart: the asked range, so a sparse answer is shown in context. */
  let plotRange = [0, 1];
  let plotKey = "";
  let shown = null; // { xs, ys, devs, bucket } of the chart on screen
  let controller = null;
  let liveTimer = 0;
  const colours = new Map();
  const seenDevices = new Set();

  // ---- helpers -------------------------------------------------------------------------------

  function colourOf(device) {
    let c = colours.get(device);
    if (c === undefined) {
      c = PALETTE[colours.size % PALETTE.length];
      colours.set(device, c);
    }
    return c;
  }

  /** [start, end) in ms for a preset, ending now. */
  function presetRange(name, now) {
    switch (name) {
      case "1h":
        return [now - HOUR, now];
      case "today": {
        const midnight = new Date(now);
        midnight.setHours(0, 0, 0, 0);
        return [midnight.getTime(), Math.max(now, midnight.getTime() + 1000)];
      }
      case "7d":
        return [now - 7 * DAY, now];
      case "30d":
        return [now - 30 * DAY, now];
      default:
        return [now - 365 * DAY, now];
    }
  }

  /** The API's bucket count for [start, end): epoch-aligned buckets touched. */
  function bucketCount(start, end, ms) {
    return Math.ceil(end / ms) - Math.floor(start / ms);
  }

  /** The smallest bucket that keeps the chart within MAX_POINTS. */
  function autoBucket(start, end) {
    for (const [name, ms] of BUCKETS) if (bucketCount(start, end, ms) <= MAX_POINTS) return name;
    return "1d";
  }

  function currentRange() {
    return view.range ? presetRange(view.range, Date.now()) : [view.start, view.end];
  }

  const pad = (n, w = 2) => String(n).padStart(w, "0");
  /** ms → the value of a datetime-local input (local time, to the second). */
  function toLocalInput(ms) {
    const d = new Date(ms);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${
      pad(d.getMinutes())
    }:${pad(d.getSeconds())}`;
  }
  /** A datetime-local value (local time) → ms, or NaN. */
  function fromLocalInput(value) {
    return value ? new Date(value).getTime() : NaN;
  }
  const localFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const shortFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  const num = new Intl.NumberFormat();
  const tickTime = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  const tickSec = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", second: "2-digit" });
  const tickDay = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  const tickMonth = new Intl.DateTimeFormat(undefined, { month: "short", year: "numeric" });
  const utcText = (ms) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  /** ISO 8601 in UTC for the API and the URL, without needless milliseconds. */
  const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");

  function setText(node, text) {
    node.textContent = text;
  }

  // ---- the URL -------------------------------------------------------------------------------

  function readUrl() {
    const p = new URLSearchParams(location.search || location.hash.slice(1));
    view.user = p.get("user") ?? localStorage.getItem(USER_KEY) ?? "";
    const start = Date.parse(p.get("start") ?? "");
    const end = Date.parse(p.get("end") ?? "");
    const range = p.get("range");
    if (PRESETS.includes(range)) {
      view.range = range;
    } else if (Number.isFinite(start) && Number.isFinite(end) && start < end) {
      view.range = null;
      view.start = start;
      view.end = end;
    } else {
      view.range = "today";
    }
    const bucket = p.get("bucket");
    view.bucket = BUCKET_MS.has(bucket) ? bucket : "auto";
    view.device = p.get("device") ?? "";
    view.live = p.get("live") === "1" && view.range !== null;
  }

  function writeUrl() {
    const p = new URLSearchParams();
    if (view.user) p.set("user", view.user);
    if (view.range) {
      p.set("range", view.range);
    } else {
      p.set("start", iso(view.start));
      p.set("end", iso(view.end));
    }
    if (view.bucket !== "auto") p.set("bucket", view.bucket);
    if (view.device) p.set("device", view.device);
    if (view.live) p.set("live", "1");
    const url = `${location.pathname}?${p}`;
    if (url !== location.pathname + location.search) history.pushState(null, "", url);
  }

  // ---- controls ↔ view -----------------------------------------------------------------------

  function showControls() {
    el.user.value = view.user;
    for (const radio of el.form.elements.range) radio.checked = radio.value === view.range;
    const [start, end] = currentRange();
    el.from.value = toLocalInput(start);
    el.to.value = toLocalInput(end);
    el.bucket.value = view.bucket;
    el.device.value = view.device;
    el.live.checked = view.live;
    el.live.disabled = view.range === null;
    setText(el.liveHint, view.range === null ? "for ranges ending now" : `every ${LIVE_MS / 1000} s`);
    updateAutoLabel(start, end);
  }

  function updateAutoLabel(start, end) {
    el.bucket.options[0].textContent = `Auto (${autoBucket(start, end)})`;
  }

  function showToken(reason) {
    el.tokenField.hidden = false;
    if (reason) el.token.focus();
  }

  /** Applies a change to the view, then records it in the URL and loads. */
  function change(mutate) {
    mutate();
    if (view.range === null) view.live = false;
    showControls();
    writeUrl();
    load();
  }

  el.form.addEventListener("change", (e) => {
    const t = e.target;
    if (t.name === "range") change(() => (view.range = t.value));
    else if (t === el.bucket) change(() => (view.bucket = el.bucket.value));
    else if (t === el.device) change(() => (view.device = el.device.value.trim()));
    else if (t === el.live) change(() => (view.live = el.live.checked));
    else if (t === el.user) {
      change(() => (view.user = el.user.value.trim()));
      if (view.user) localStorage.setItem(USER_KEY, view.user);
    } else if (t === el.token) {
      if (el.token.value) sessionStorage.setItem(TOKEN_KEY, el.token.value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } else if (t === el.from || t === el.to) {
      const start = fromLocalInput(el.from.value);
      const end = fromLocalInput(el.to.value);
      if (start < end) updateAutoLabel(start, end);
    }
  });

  function applyCustom() {
    const start = fromLocalInput(el.from.value);
    const end = fromLocalInput(el.to.value);
    if (!(start < end)) {
      showProblem("Check the range", "The start of the range must be before its end.");
      el.from.focus();
      return;
    }
    change(() => {
      view.range = null;
      view.start = start;
      view.end = end;
    });
  }
  el.apply.addEventListener("click", applyCustom);
  for (const input of [el.from, el.to]) {
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        applyCustom();
      }
    });
  }

  el.form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (el.token.value) sessionStorage.setItem(TOKEN_KEY, el.token.value);
    else sessionStorage.removeItem(TOKEN_KEY);
    change(() => {
      view.user = el.user.value.trim();
      view.device = el.device.value.trim();
      view.bucket = el.bucket.value;
    });
    if (view.user) localStorage.setItem(USER_KEY, view.user);
  });

  addEventListener("popstate", () => {
    readUrl();
    showControls();
    load();
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && view.live) load({ quiet: true });
  });

  // ---- loading -------------------------------------------------------------------------------

  /** Fetches the view's answer; a newer call aborts the request of an older one. */
  async function load({ quiet = false } = {}) {
    clearTimeout(liveTimer);
    controller?.abort();
    if (!view.user) {
      clearChart();
      showMessage("Enter a user id", "The chart shows one person's heart rate; type their user id above.");
      el.user.focus();
      return;
    }
    const ctrl = (controller = new AbortController());
    const [start, end] = currentRange();
    const bucket = view.bucket === "auto" ? autoBucket(start, end) : view.bucket;
    const params = new URLSearchParams({ user_id: view.user, start: iso(start), end: iso(end), bucket });
    if (view.device) params.set("device_id", view.device);
    const headers = { accept: "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.authorization = `Bearer ${token}`;
    if (view.range && document.activeElement !== el.from && document.activeElement !== el.to) {
      el.from.value = toLocalInput(start); // a live refresh moves the range along
      el.to.value = toLocalInput(end);
    }
    setText(el.title, `${view.user} · ${shortFmt.format(start)} – ${shortFmt.format(end)}`);
    document.title = `${view.user} · Heart rate · pulsedb`;
    if (!quiet) el.chart.parentElement.setAttribute("aria-busy", "true");

    let res;
    let body;
    try {
      res = await fetch(`${API}?${params}`, { signal: ctrl.signal, headers, cache: "no-store" });
      const text = await res.text();
      if (ctrl.signal.aborted) return;
      const arrived = performance.now(); // the whole answer is here; parsing counts as drawing time
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
      controller = null;
      el.chart.parentElement.removeAttribute("aria-busy");
      if (res.ok && body && Array.isArray(body.data) && body.data.length > 0) {
        draw(body.data, start, end, bucket, arrived);
      } else if (res.status === 404 || (res.ok && Array.isArray(body?.data))) {
        clearChart();
        showMessage(
          "No readings",
          `No heart-rate readings for ${view.user}${view.device ? ` from ${view.device}` : ""} between ${
            shortFmt.format(start)
          } and ${shortFmt.format(end)}. Try a longer range or check the user id.`,
          "empty",
        );
      } else if (res.status === 401) {
        clearChart();
        showToken(true);
        showProblem(
          token ? "The access token was refused" : "An access token is required",
          body?.detail ?? "Enter an access token and press Show.",
        );
        return; // no live refresh until a token is given
      } else {
        if (!quiet) clearChart(); // a live refresh keeps the last chart under the problem
        showProblem(`${body?.title ?? "Request failed"} (${res.status})`, body?.detail ?? res.statusText, body?.errors);
      }
    } catch (err) {
      if (ctrl.signal.aborted) return;
      controller = null;
      el.chart.parentElement.removeAttribute("aria-busy");
      if (!quiet) {
        clearChart();
        showProblem("pulsedb did not answer", String(err?.message ?? err));
      }
    }
    scheduleLive();
  }

  function scheduleLive() {
    clearTimeout(liveTimer);
    if (view.live && view.range !== null && document.visibilityState !== "hidden") {
      liveTimer = setTimeout(() => load({ quiet: true }), LIVE_MS);
    }
  }

  // ---- messages ------------------------------------------------------------------------------

  function showMessage(title, detail, kind = "info") {
    el.status.className = `status ${kind}`;
    el.status.replaceChildren();
    const h = document.createElement("strong");
    h.textContent = title;
    const p = document.createElement("p");
    p.textContent = detail;
    el.status.append(h, p);
    el.status.hidden = false;
  }

  function showProblem(title, detail, errors) {
    showMessage(title, detail, "error");
    if (Array.isArray(errors) && errors.length > 0) {
      const ul = document.createElement("ul");
      for (const e of errors.slice(0, 10)) {
        const li = document.createElement("li");
        li.textContent = e.path ? `${e.path}: ${e.message}` : e.message;
        ul.append(li);
      }
      el.status.append(ul);
    }
  }

  function clearMessage() {
    el.status.hidden = true;
    el.status.replaceChildren();
  }

  function clearChart() {
    plot?.destroy();
    plot = null;
    plotKey = "";
    shown = null;
    el.chart.hidden = true;
    el.chart.dataset.points = "0";
    el.legend.replaceChildren();
    setText(el.summary, "");
    setText(el.readout, "");
  }

  // ---- the chart -----------------------------------------------------------------------------

  /**
   * Draws an answer: one grey line through the buckets (broken where the data has a real gap), and
   * per device a series in its colour (dots, joined where the device answered consecutive buckets)
   * marking the buckets that device answered.
   */
  function draw(rows, start, end, bucket, arrived) {
    const bucketMs = BUCKET_MS.get(bucket);
    const n = rows.length;
    // Order devices by first use in this page (stable colours), new ones alphabetically.
    const names = [...new Set(rows.map((r) => r.device_id))].sort();
    for (const d of names) {
      colourOf(d);
      if (!seenDevices.has(d)) {
        seenDevices.add(d);
        const o = document.createElement("option");
        o.value = d;
        el.devices.append(o);
      }
    }
    const devs = names.sort((a, b) => [...colours.keys()].indexOf(a) - [...colours.keys()].indexOf(b));
    const col = new Map(devs.map((d, i) => [d, i]));

    // A gap: more than 3 buckets and more than 5 typical spacings without an answer.
    const ts = rows.map((r) => Date.parse(r.timestamp));
    const deltas = [];
    for (let i = 1; i < n; i++) deltas.push(ts[i] - ts[i - 1]);
    deltas.sort((a, b) => a - b);
    const typical = deltas.length ? deltas[deltas.length >> 1] : bucketMs;
    const gap = Math.max(3 * bucketMs, 5 * typical);

    const xs = [];
    const ys = [];
    const perDev = devs.map(() => []);
    const rowOf = [];
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    const counts = new Map();
    for (let i = 0; i < n; i++) {
      if (i > 0 && ts[i] - ts[i - 1] > gap) {
        xs.push((ts[i - 1] + bucketMs) / 1000);
        ys.push(null);
        for (const s of perDev) s.push(null);
        rowOf.push(-1);
      }
      const hr = rows[i].heart_rate;
      const d = col.get(rows[i].device_id);
      xs.push(ts[i] / 1000);
      ys.push(hr);
      for (let k = 0; k < perDev.length; k++) perDev[k].push(k === d ? hr : null);
      rowOf.push(i);
      if (hr < min) min = hr;
      if (hr > max) max = hr;
      sum += hr;
      counts.set(rows[i].device_id, (counts.get(rows[i].device_id) ?? 0) + 1);
    }
    // Dense charts mark each device's runs by the colour of its line; a dot is drawn only where a
    // device answered a lone bucket (no line to colour). Sparse charts get a dot on every bucket.
    const dense = xs.length > 600;
    const dots = perDev.map((s) => {
      if (!dense) return null;
      const lone = [];
      for (let i = 0; i < s.length; i++) if (s[i] !== null && s[i - 1] == null && s[i + 1] == null) lone.push(i);
      return lone;
    });
    shown = { xs, ys, rows, rowOf, devs, dots };

    clearMessage();
    el.chart.hidden = false;
    const size = n > 600 ? 5 : n > 150 ? 5 : 7;
    const key = `${devs.join("\u0000")}|${size}`;
    const data = [xs, ys, ...perDev];
    answeredAt = arrived;
    plotRange = [start / 1000, end / 1000];
    if (plot && key === plotKey) {
      plot.setData(data);
    } else {
      plot?.destroy();
      el.chart.replaceChildren();
      plot = new uPlot(options(devs, size), data, el.chart);
      plotKey = key;
    }
    window.pulsedbPlot = plot;

    // Legend and summary.
    el.legend.replaceChildren(
      ...devs.map((d) => {
        const li = document.createElement("li");
        li.dataset.device = d;
        const sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = colourOf(d);
        li.append(sw, `${d} `);
        const c = document.createElement("span");
        c.className = "count";
        c.textContent = `${num.format(counts.get(d))} ${counts.get(d) === 1 ? "bucket" : "buckets"}`;
        li.append(c);
        return li;
      }),
    );
    setText(
      el.summary,
      `${num.format(n)} ${n === 1 ? "point" : "points"} · ${bucket} buckets · min ${fmtHr(min)} · mean ${
        fmtHr(sum / n)
      } · max ${fmtHr(max)} bpm`,
    );
    el.chart.dataset.points = String(n);
    el.chart.dataset.bucket = bucket;
    el.chart.setAttribute(
      "aria-label",
      `Heart rate chart, ${n} points from ${fmtHr(min)} to ${
        fmtHr(max)
      } bpm. Use the left and right arrow keys to read the values.`,
    );
    if (!el.readout.textContent) {
      setText(el.readout, "Hover the chart, or focus it and use the arrow keys, to read a value.");
    }
  }

  /** Records how long after its answer arrived a chart was drawn (uPlot draws the canvas in a microtask). */
  let answeredAt = 0;
  function drawn() {
    if (answeredAt === 0) return;
    el.chart.dataset.drawMs = String(Math.round(performance.now() - answeredAt));
    answeredAt = 0;
  }

  const fmtHr = (v) => (Math.round(v * 10) / 10).toLocaleString();

  function chartSize() {
    const width = Math.max(200, el.chart.clientWidth || el.chart.parentElement.clientWidth - 2);
    const height = Math.round(Math.min(460, Math.max(240, innerHeight * (innerWidth < 640 ? 0.42 : 0.5))));
    return { width, height };
  }

  function options(devs, size) {
    const axis = {
      stroke: "#4b5563",
      grid: { stroke: "#e5e7eb", width: 1 },
      ticks: { stroke: "#d1d5db", width: 1 },
      font: "12px system-ui, sans-serif",
    };
    return {
      ...chartSize(),
      legend: { show: false },
      padding: [12, 28, 0, 0],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        points: { size: 9, width: 2 },
      },
      scales: { x: { time: true, range: () => [plotRange[0], plotRange[1]] }, y: { auto: true, range: yRange } },
      axes: [
        { ...axis, space: 70, values: timeTicks },
        { ...axis, label: "bpm", labelSize: 22, labelFont: "12px system-ui, sans-serif", size: 44 },
      ],
      series: [
        {},
        { label: "Heart rate", stroke: LINE, width: 1.5, points: { show: false } },
        ...devs.map((d) => ({
          label: d,
          stroke: colourOf(d),
          width: 2,
          points: {
            show: true,
            filter: (_u, si) => shown?.dots[si - 2] ?? null,
            size,
            width: 1,
            stroke: colourOf(d),
            fill: colourOf(d),
          },
        })),
      ],
      hooks: {
        setCursor: [readout],
        setSelect: [zoom],
        draw: [drawn],
      },
    };
  }

  /** Time axis labels in the reader's locale: times, with the date under the first tick of each day. */
  function timeTicks(_u, splits, _axisIdx, _space, incr) {
    let prevDay = "";
    return splits.map((s) => {
      const d = new Date(s * 1000);
      if (incr >= 28 * 86400) return tickMonth.format(d);
      const day = tickDay.format(d);
      if (incr >= 86400) return day;
      const time = (incr < 60 ? tickSec : tickTime).format(d);
      const label = day === prevDay ? time : `${time}\n${day}`;
      prevDay = day;
      return label;
    });
  }

  function yRange(_u, min, max) {
    if (min === null || max === null) return [40, 120];
    const span = Math.max(10, max - min);
    return [Math.max(0, Math.floor((min - span * 0.1) / 5) * 5), Math.ceil((max + span * 0.1) / 5) * 5];
  }

  /** Dragging across the chart zooms: it becomes a custom range. */
  function zoom(u) {
    if (u.select.width < 4) return;
    const start = Math.round(u.posToVal(u.select.left, "x") * 1000);
    const end = Math.round(u.posToVal(u.select.left + u.select.width, "x") * 1000);
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (end - start < 1000) return;
    change(() => {
      view.range = null;
      view.start = start;
      view.end = end;
    });
  }

  function readout(u) {
    const i = u.cursor.idx;
    if (i == null || !shown || shown.rowOf[i] === undefined || shown.rowOf[i] < 0) return;
    const row = shown.rows[shown.rowOf[i]];
    const ms = shown.xs[i] * 1000;
    el.readout.replaceChildren();
    const t = document.createElement("time");
    t.dateTime = row.timestamp;
    t.textContent = localFmt.format(ms);
    const utc = document.createElement("span");
    utc.className = "utc";
    utc.textContent = utcText(ms);
    const v = document.createElement("strong");
    v.textContent = `${fmtHr(row.heart_rate)} bpm`;
    const dev = document.createElement("span");
    dev.className = "dev";
    dev.dataset.device = row.device_id;
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colourOf(row.device_id);
    dev.append(sw, row.device_id);
    el.readout.append(t, " (local) · ", utc, " · ", v, " · ", dev);
  }

  // Keyboard: arrows step through the points, Home/End jump, PageUp/PageDown step by a tenth.
  el.chart.addEventListener("keydown", (e) => {
    if (!plot || !shown) return;
    const last = shown.xs.length - 1;
    let i = plot.cursor.idx ?? -1;
    const step = { ArrowLeft: -1, ArrowRight: 1, PageUp: -Math.ceil(last / 10), PageDown: Math.ceil(last / 10) }[e.key];
    if (step !== undefined) i = i < 0 ? (step > 0 ? 0 : last) : Math.min(last, Math.max(0, i + step));
    else if (e.key === "Home") i = 0;
    else if (e.key === "End") i = last;
    else return;
    e.preventDefault();
    while (shown.ys[i] === null && i > 0) i--;
    plot.setCursor({ left: plot.valToPos(shown.xs[i], "x"), top: plot.valToPos(shown.ys[i], "y") });
  });

  new ResizeObserver(() => {
    if (plot && !el.chart.hidden) plot.setSize(chartSize());
  }).observe(el.chart.parentElement);

  // ---- start ---------------------------------------------------------------------------------

  if (authOn) showToken(false);
  el.token.value = sessionStorage.getItem(TOKEN_KEY) ?? "";
  clearChart();
  readUrl();
  showControls();
  if (view.user) localStorage.setItem(USER_KEY, view.user);
  load();
})();
