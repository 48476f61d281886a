// Room page: uPlot charts of the current session (history from the server, then live points
// from the stream) with the alert thresholds drawn, and the event timeline.
"use strict";

(() => {
  const { el } = Board;
  const main = document.getElementById("room-main");
  const room = main.dataset.room;
  const LEVEL_COLOUR = { high: "#c62828", medium: "#b39500", low: "#00838f" };
  const CHARTS = [
    { key: "spo2", title: "SpO₂ (%)", cols: [["spo2", "SpO₂", "#0b4fa8"]], range: [70, 100] },
    { key: "hr", title: "Heart / pulse rate (/min)", cols: [["hr", "HR", "#0b4fa8"]], range: [30, 180] },
    { key: "nibp", title: "NIBP (mmHg)", cols: [["nibp_sys", "sys", "#0b4fa8"], ["nibp_dia", "dia", "#7a3fb0"]], range: [30, 220], sparse: true },
    { key: "rr", title: "Respiratory rate (/min)", cols: [["resp_rate", "RR", "#0b4fa8"]], range: [0, 40] },
  ];
  const charts = [];
  const seenEvents = new Set();
  const seenPages = new Set();
  let lastSeq = 0;
  let ready = false;
  const pending = [];

  function value(row, col) {
    if (col === "hr") return row.heart_rate ?? row.pulse_rate ?? row.hr ?? null;
    return row[col] ?? null;
  }

  // The time axis's labels: the site's 24-hour clock (kept on the chart's box as text too:
  // the canvas has none to read)
  function timeLabels(holder) {
    return (u, splits) => {
      const labels = splits.map((s) => Board.siteTime(s * 1000, { zone: false }));
      holder.dataset.timeAxis = labels.join(" ");
      return labels;
    };
  }

  function build(data) {
    const box = document.getElementById("charts");
    box.replaceChildren();
    document.getElementById("session-label").textContent = data.session_id ? `(session ${data.session_id})` : "";
    const width = Math.max(320, box.clientWidth - 20);
    for (const def of CHARTS) {
      const thr = data.thresholds.filter((t) => t.chart === def.key);
      const xs = data.vitals.map((r) => Date.parse(r.ts) / 1000);
      const series = [{ label: "time", value: (u, v) => (v === null || v === undefined ? "–" : Board.siteTime(v * 1000, { seconds: true })) }];
      const cols = [xs];
      for (const [col, label, colour] of def.cols) {
        // NIBP is measured every few minutes: join the measurements and show each one
        series.push(def.sparse ? { label, stroke: colour, width: 1.5, spanGaps: true, points: { show: true, size: 6 } }
          : { label, stroke: colour, width: 1.5, spanGaps: false });
        cols.push(data.vitals.map((r) => value(r, col)));
      }
      for (const t of thr) {
        const sign = t.op === "below" ? "<" : ">";
        series.push({ label: `${t.name} ${sign} ${t.threshold} (${t.severity})`, stroke: LEVEL_COLOUR[t.severity] || "#c62828",
          dash: [6, 4], width: 1.5, points: { show: false } });
        cols.push(xs.map(() => t.threshold));
      }
      const holder = el("div", { class: "chart-box", "data-chart": def.key }, el("h3", { text: def.title }));
      box.append(holder);
      const opts = {
        width, height: 170, series,
        scales: { y: { range: (u, lo, hi) => [Math.min(def.range[0], lo ?? def.range[0]), Math.max(def.range[1], hi ?? def.range[1])] } },
        // the site's clock on the time axis and in the legend, never the browser's zone
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), Board.SITE_TZ),
        axes: [{ label: `time (${Board.zoneName(Date.now())})`, labelSize: 18, values: timeLabels(holder) },
               { size: 45 }],
        legend: { show: true },
      };
      const plot = new uPlot(opts, cols, holder);
      charts.push({ def, thr, plot, cols });
    }
    lastSeq = data.vitals.reduce((m, r) => Math.max(m, r.seq), 0);
    for (const e of data.events) addEvent(e);
    for (const p of data.pages || []) addPage(p);
    ready = true;
    pending.splice(0).forEach(onView);
  }

  function addPoint(v) {
    if (v.seq <= lastSeq) return;
    lastSeq = v.seq;
    const x = Date.parse(v.ts) / 1000;
    for (const c of charts) {
      c.cols[0].push(x);
      let i = 1;
      for (const [col] of c.def.cols) c.cols[i++].push(col === "resp_rate" ? v.rr : value(v, col));
      for (const t of c.thr) c.cols[i++].push(t.threshold);
      c.plot.setData(c.cols);
    }
    main.dataset.chartSeq = String(v.seq);
  }

  function describe(e) {
    const bits = [e.kind.replaceAll("_", " ")];
    if (e.from_phase || e.phase) bits.push(`${e.from_phase ? e.from_phase + " → " : ""}${e.phase || ""}`);
    if (e.call_id) bits.push(`${e.detail && e.detail.call_type ? e.detail.call_type + " " : ""}call ${e.call_id}${e.priority ? " (" + e.priority + ")" : ""}`);
    if (e.detail && e.detail.name) bits.push(String(e.detail.name) + (e.detail.value !== undefined ? ` ${e.detail.value}` : ""));
    if (e.by) bits.push(`by ${e.by}`);
    if (e.reason) bits.push(e.reason);
    return bits.join(" · ");
  }

  function addEvent(e) {
    if (seenEvents.has(e.seq)) return;
    seenEvents.add(e.seq);
    const list = document.getElementById("timeline");
    const li = el("li", { "data-kind": e.kind }, el("time", { datetime: e.ts, text: Board.siteTime(e.ts, { seconds: true }) }), describe(e));
    list.prepend(li);
  }

  // A notifier's page attempt (issue 15): the server words it (`text`), once per attempt
  // and result, placed by its time among the events.
  function addPage(p) {
    const key = [p.call_id, p.tier, p.recipient, p.channel, p.attempt, p.status].join("|");
    if (seenPages.has(key) || !p.text) return;
    seenPages.add(key);
    const list = document.getElementById("timeline");
    const li = el("li", { "data-kind": "page", "data-status": p.status, "data-at": p.at },
      el("time", { datetime: p.at, text: p.at.slice(11, 19) }), p.text);
    const later = [...list.children].find((x) => (x.querySelector("time")?.getAttribute("datetime") || "") <= p.at);
    list.insertBefore(li, later || null);
  }

  function onView(view) {
    if (!ready) { pending.push(view); return; }
    if (view.vitals) addPoint(view.vitals);
    if (view.last_event) addEvent(view.last_event);
    for (const c of view.calls || []) for (const d of c.deliveries || []) addPage(d);
  }

  document.addEventListener("room-view", (ev) => { if (ev.detail.room === room) onView(ev.detail); });
  fetch(`/api/rooms/${encodeURIComponent(room)}/session`, { credentials: "same-origin" })
    .then((r) => r.json()).then(build)
    .catch((e) => { document.getElementById("charts").textContent = "charts unavailable: " + e.message; });
})();
