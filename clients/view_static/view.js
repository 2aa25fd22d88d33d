// s2gesture view: renders the JSON the view server sends over /ws. Text from the network is only ever
// set with textContent; images are PNG data drawn on canvases. No framework, no build step.
"use strict";

(function () {
  const PALETTE = ["#ff6b6b", "#ffd43b", "#69db7c", "#4dabf7", "#da77f2", "#ff922b",
    "#38d9a9", "#f783ac", "#a9e34b", "#74c0fc", "#e599f7", "#ffa94d", "#63e6be", "#ced4da"];
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  const match = location.pathname.match(/^\/stream\/([A-Za-z0-9_.-]{1,64})$/);
  const only = match ? match[1] : null;

  const view = {
    classes: [], windowS: 10, clockOffsetMs: 0, streams: new Map(), status: null,
    chartsDirty: new Set(), chartScheduled: false,
  };
  // what the page showed and when (for latency measurements): {stream, seq, label, final, received_ms, shown_ms}
  window.s2gShown = [];
  window.s2gView = view;

  const $ = (id) => document.getElementById(id);
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  const nowMs = () => performance.timeOrigin + performance.now();
  const serverNow = () => Date.now() + view.clockOffsetMs;
  function fmt(n, digits) {
    if (n === null || n === undefined || Number.isNaN(n)) return "-";
    return Number(n).toFixed(digits);
  }
  function si(n) {
    if (n === null || n === undefined) return "-";
    const a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(2) + " G";
    if (a >= 1e6) return (n / 1e6).toFixed(2) + " M";
    if (a >= 1e3) return (n / 1e3).toFixed(1) + " k";
    return n.toFixed(0);
  }
  function clock(ms) {
    const d = new Date(ms);
    return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0").slice(0, 1);
  }

  if (only) {
    $("page-title").textContent = "stream " + only;
    $("streams").classList.add("single");
  }
  const home = $("home");
  if (token) home.href = "/?token=" + encodeURIComponent(token);

  // ------------------------------------------------------------------------------------- stream cards

  function streamCard(sid) {
    let s = view.streams.get(sid);
    if (s) return s;
    const card = el("article", "stream");
    card.dataset.stream = sid;
    const h = el("h2");
    const link = el("a", null, sid);
    link.href = "/stream/" + encodeURIComponent(sid) + (token ? "?token=" + encodeURIComponent(token) : "");
    const rate = el("span", "rate", "");
    h.append(link, rate);
    const row = el("div", "row");
    const events = el("div", "events");
    const canvas = el("canvas");
    canvas.width = 256; canvas.height = 256;
    const noevents = el("div", "noevents", "no event packets: start the view with --input and publish to it");
    events.append(canvas, noevents);
    const decision = el("div", "decision");
    const label = el("div", "label none", "no gesture yet");
    const conf = el("div", "confidence", "");
    const bar = el("div", "bar");
    const fill = el("span");
    bar.append(fill);
    const list = el("ol", "decisions");
    decision.append(label, conf, bar, list);
    row.append(events, decision);
    const chart = el("div", "chart");
    const chartCanvas = el("canvas");
    const legend = el("div", "legend");
    chart.append(chartCanvas, legend);
    const counters = el("div", "counters", "");
    card.append(h, row, chart, counters);
    $("streams").append(card);
    $("no-streams").hidden = true;
    s = { sid, card, rate, canvas, noevents, label, conf, fill, list, chartCanvas, legend, counters,
          preds: [], image: null, frame: null, legendKey: "" };
    view.streams.set(sid, s);
    return s;
  }

  function showGesture(s, g, record) {
    s.label.textContent = g.class_id >= 0 ? g.label : "no gesture";
    s.label.classList.toggle("none", g.class_id < 0);
    s.label.dataset.seq = g.seq;
    s.label.dataset.final = g.final ? "1" : "0";
    s.conf.textContent = (g.final ? "final" : "onset") + " · confidence " + fmt(g.confidence, 2) +
      (g.segment ? " · " + g.segment : "");
    s.fill.style.width = Math.round(100 * g.confidence) + "%";
    if (record) {
      // the label is in the DOM now; it is on screen at the next frame
      requestAnimationFrame(() => {
        window.s2gShown.push({ stream: g.stream, seq: g.seq, label: g.label, final: g.final,
                               received_ms: g.received_ms, shown_ms: nowMs() });
        if (window.s2gShown.length > 5000) window.s2gShown.splice(0, 1000);
      });
    }
  }

  function addDecision(s, g) {
    const li = el("li", g.final ? "final" : "onset");
    li.append(el("span", "time", clock(g.received_ms)), el("span", "kind", g.final ? "FINAL" : "onset"),
              el("span", "what", (g.class_id >= 0 ? g.label : "none") + " " + fmt(g.confidence, 2)));
    s.list.prepend(li);
    while (s.list.children.length > 12) s.list.lastChild.remove();
  }

  function drawFrame(s, f) {
    s.frame = f;
    s.noevents.hidden = true;
    s.rate.textContent = si(f.events_per_s) + " ev/s seen" + (f.sample_every > 1 ? " (1 in " + f.sample_every + " packets drawn)" : "");
    const img = new Image();
    img.onload = () => {
      const c = s.canvas;
      if (c.width !== f.width || c.height !== f.height) {
        // draw at a multiple of the sensor size so the box lines stay crisp
        const k = Math.max(1, Math.floor(512 / Math.max(f.width, f.height)));
        c.width = f.width * k; c.height = f.height * k;
      }
      const g = c.getContext("2d");
      g.imageSmoothingEnabled = false;
      g.drawImage(img, 0, 0, c.width, c.height);
      const k = c.width / f.width;
      const [x0, y0, x1, y1] = f.box;
      if (x1 > x0 && y1 > y0) {
        g.strokeStyle = "rgba(255,255,255,0.85)";
        g.lineWidth = Math.max(1, k);
        g.setLineDash([4 * k, 3 * k]);
        g.strokeRect(x0 * k + 0.5, y0 * k + 0.5, (x1 - x0) * k - 1, (y1 - y0) * k - 1);
      }
    };
    img.src = "data:image/png;base64," + f.png;
  }

  // ------------------------------------------------------------------------------------- strip chart

  function scheduleChart(s) {
    view.chartsDirty.add(s);
    if (view.chartScheduled) return;
    view.chartScheduled = true;
    requestAnimationFrame(() => {
      view.chartScheduled = false;
      for (const t of view.chartsDirty) drawChart(t);
      view.chartsDirty.clear();
    });
  }

  function drawChart(s) {
    const c = s.chartCanvas;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(100, Math.round(c.clientWidth * dpr)), h = Math.max(60, Math.round(c.clientHeight * dpr));
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    const g = c.getContext("2d");
    g.clearRect(0, 0, w, h);
    const end = serverNow(), start = end - view.windowS * 1000;
    while (s.preds.length && s.preds[0].t_ms < start) s.preds.shift();
    g.strokeStyle = "#2c333d"; g.lineWidth = 1;
    for (let k = 1; k < 4; k++) { const y = Math.round(h * k / 4) + 0.5; g.beginPath(); g.moveTo(0, y); g.lineTo(w, y); g.stroke(); }
    if (!s.preds.length) return;
    const n = s.preds[s.preds.length - 1].scores.length;
    const x = (t) => (t - start) / (end - start) * w;
    const last = s.preds[s.preds.length - 1];
    for (let i = 0; i < n; i++) {
      g.strokeStyle = PALETTE[i % PALETTE.length];
      g.lineWidth = (i === last.class_id ? 2.5 : 1.2) * dpr;
      g.beginPath();
      s.preds.forEach((p, j) => {
        const total = p.scores.reduce((a, b) => a + b, 0);
        const share = total > 0 ? p.scores[i] / total : 0;
        const px = x(p.t_ms), py = h - 2 - share * (h - 4);
        if (j === 0) g.moveTo(px, py); else g.lineTo(px, py);
      });
      g.stroke();
    }
    const key = n + ":" + last.class_id;
    if (key !== s.legendKey) {
      s.legendKey = key;
      s.legend.replaceChildren();
      for (let i = 0; i < n; i++) {
        const item = el("span", i === last.class_id ? "top" : "");
        const sw = el("i"); sw.style.background = PALETTE[i % PALETTE.length];
        item.append(sw, document.createTextNode(view.classes[i] || "class " + i));
        s.legend.append(item);
      }
    }
  }

  // ------------------------------------------------------------------------------------- daemon status

  function dd(parent, name, value) {
    const d = el("div");
    d.append(el("dt", null, name), el("dd", null, value));
    d.dataset.key = name;
    parent.append(d);
  }
  function pct(m) {
    if (!m || m.p50 === undefined) return "-";
    return fmt(m.p50, 1) + " / " + fmt(m.p90, 1) + " / " + fmt(m.p99, 1) + " ms";
  }

  function showStatus(msg) {
    view.status = msg;
    const st = msg.status;
    const state = $("state");
    if (!st) {
      state.dataset.state = "unknown"; state.textContent = "no heartbeat yet";
      $("daemon-summary").textContent = "waiting for the daemon on its output endpoint";
      return;
    }
    if (msg.alive) {
      state.dataset.state = st.state; state.textContent = st.state;
    } else {
      state.dataset.state = "absent"; state.textContent = "no heartbeat";
    }
    const model = st.model || {};
    $("daemon-summary").textContent = (msg.alive ? "" : "last seen: " + st.state + " · ") + "backend " + st.backend +
      " · model " + (model.name || "?") + (model.hash ? " " + String(model.hash).slice(0, 12) : "") +
      " · " + st.mode + " input" + (msg.restarts ? " · restarted " + msg.restarts + "x" : "");
    const d = $("daemon-details");
    d.replaceChildren();
    const totals = st.totals || {};
    dd(d, "events/s", si(msg.events_per_s));
    dd(d, "events total", si(totals.events || 0));
    const drops = totals.dropped_by_reason || {};
    const reasons = Object.keys(drops).filter((k) => drops[k] > 0).sort();
    dd(d, "drops", reasons.length ? reasons.map((k) => k + " " + drops[k]).join(", ") : "none");
    dd(d, "latency p50/p90/p99", pct(st.latency_ms));
    dd(d, "inference p50/p90/p99", pct(st.inference_ms));
    dd(d, "window / stride", (st.window_ticks ?? "-") + " / " + (st.stride_ticks ?? "-") + " ticks");
    dd(d, "uptime", fmt(st.uptime_s, 0) + " s · pid " + st.pid);
    if (st.backend_counters) {
      const bc = st.backend_counters;
      dd(d, "backend counters", Object.keys(bc).sort().map((k) => k + " " + bc[k]).join(", ") || "none");
    }
    const err = $("daemon-error");
    err.hidden = !st.error;
    err.textContent = st.error ? "error: " + st.error : "";
    for (const [sid, c] of Object.entries(st.streams || {})) {
      if (only && sid !== only) continue;
      const s = streamCard(sid);
      const dropped = Object.values(c.dropped || {}).reduce((a, b) => a + b, 0);
      const rate = (msg.stream_rates || {})[sid];
      s.counters.textContent = "daemon: " + si(rate || 0) + " ev/s · " + si(c.events || 0) + " events · " +
        (c.chunks || 0) + " chunks · " + dropped + " dropped · queue " + (c.queue || 0) +
        (c.segment ? " · segment " + c.segment : "");
    }
  }

  // ------------------------------------------------------------------------------------- messages

  const handlers = {
    hello(m) {
      view.classes = m.classes; view.windowS = m.window_s;
      view.clockOffsetMs = m.now_ms - Date.now();
      const mi = m.mapping;
      $("mapping").textContent = "(" + mi.name + " to " + mi.input_size[0] + "x" + mi.input_size[1] + ", " + mi.source + ")";
      for (const snap of m.streams) {
        const s = streamCard(snap.stream);
        s.preds = snap.preds.slice();
        if (snap.current) showGesture(s, snap.current, false);
        s.list.replaceChildren();
        for (const g of snap.decisions.slice().reverse()) addDecision(s, g);
        if (snap.frame) drawFrame(s, snap.frame);
        scheduleChart(s);
      }
      showStatus(m.status);
    },
    status(m) { showStatus(m); },
    pred(m) { const s = streamCard(m.stream); s.preds.push(m); scheduleChart(s); },
    gesture(m) { const s = streamCard(m.stream); showGesture(s, m, true); addDecision(s, m); },
    frame(m) { drawFrame(streamCard(m.stream), m); },
  };

  let backoff = 250;
  function connect() {
    const q = new URLSearchParams();
    if (only) q.set("stream", only);
    if (token) q.set("token", token);
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?" + q);
    const conn = $("conn");
    ws.onopen = () => { backoff = 250; conn.textContent = "live"; conn.className = "conn up"; };
    ws.onmessage = (e) => {
      view.bytes = (view.bytes || 0) + e.data.length;
      let m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      const h = handlers[m.type];
      if (h) h(m);
    };
    ws.onclose = () => {
      conn.textContent = "view server unreachable: retrying"; conn.className = "conn down";
      setTimeout(connect, backoff);
      backoff = Math.min(5000, backoff * 2);
    };
  }
  // the strip chart scrolls even when no prediction arrives
  setInterval(() => { for (const s of view.streams.values()) scheduleChart(s); }, 250);
  connect();
})();
