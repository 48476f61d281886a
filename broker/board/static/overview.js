// Overview: one tile per room, updated from the live stream. A tile's skeleton is built once
// and its parts are updated in place, so focus (keyboard users) survives updates.
"use strict";

(() => {
  const { el, since, num, duration, LEVEL_MARK, LEVEL_WORD, PHASE_NAME } = Board;
  const tiles = new Map(); // room -> {node, parts, view, callKey}
  const grid = document.getElementById("tiles");
  const announce = document.getElementById("announce");

  function skeleton(room) {
    const parts = {
      avail: el("span", { class: "avail" }),
      phase: el("span", { class: "phase-name" }),
      phaseTime: el("span", { class: "phase-time" }),
      call: el("div", { class: "call", "data-status": "idle" }),
      vitals: el("dl", { class: "vitals" }),
      vitalsAge: el("p", { class: "vitals-age" }),
      alerts: el("ul", { class: "alerts", "aria-label": "active alerts" }),
      trouble: el("ul", { class: "trouble", "aria-label": "device trouble" }),
      actions: el("div", { class: "actions" }),
      command: el("p", { class: "cmd-status", role: "status", "aria-live": "polite" }),
    };
    const v = {};
    for (const [key, label, unit] of [["spo2", "SpO₂", "%"], ["hr", "HR", "/min"],
      ["nibp", "NIBP", "mmHg"], ["rr", "RR", "/min"]]) {
      v[key] = el("dd", { class: "v-" + key });
      parts.vitals.append(el("div", { class: "vital" }, el("dt", { text: label }), v[key],
        el("span", { class: "unit", text: unit })));
    }
    parts.v = v;
    if (Board.canAct) {
      parts.phaseButton = el("button", { type: "button", class: "phase-button", text: "Set phase…" });
      parts.offlineNote = el("span", { class: "offline-note", text: Board.OFFLINE_TEXT, hidden: true });
      parts.actions.append(parts.phaseButton, parts.offlineNote);
    }
    const node = el("article", { class: "tile", id: "room-" + room, "data-room": room,
      "aria-labelledby": "title-" + room },
      el("header", {},
        el("h2", { id: "title-" + room }, el("a", { href: "/rooms/" + encodeURIComponent(room), text: "Room " + room })),
        parts.avail),
      el("p", { class: "phase" }, parts.phase, " · ", parts.phaseTime),
      parts.call, parts.vitals, parts.vitalsAge, parts.alerts, parts.trouble, parts.actions,
      parts.command);
    return { node, parts, view: null, callKey: null, alertsKey: null, troubleKey: null, commandKey: null };
  }

  function place(room, tile) {
    const rooms = [...tiles.keys()].sort();
    const idx = rooms.indexOf(room);
    const next = rooms[idx + 1];
    grid.insertBefore(tile.node, next ? tiles.get(next).node : null);
    document.getElementById("empty").hidden = true;
  }

  function renderCall(tile, view) {
    const c = view.call;
    const key = c ? [c.call_id, c.status, c.level, c.claimed_by].join("|") : "none";
    if (key === tile.callKey) return;
    const prev = tile.callKey;
    tile.callKey = key;
    const box = tile.parts.call;
    box.replaceChildren();
    box.className = "call";
    box.dataset.status = c ? c.status : "idle";
    if (!c) { box.append(el("span", { class: "no-call", text: "no call" })); return; }
    box.classList.add("lvl-" + c.level);
    const what = (c.priority === "emergency" ? "EMERGENCY CALL" : c.priority === "infusion" ? "CALL (infusion)" : "CALL");
    box.append(el("span", { class: "mark", "aria-hidden": "true", text: LEVEL_MARK[c.level] }),
      el("strong", { class: "call-what", text: `${what} · ${LEVEL_WORD[c.level]}` }));
    if (c.status === "escalated") box.append(el("span", { class: "escalated", text: " ESCALATED" }));
    box.append(el("span", { class: "call-elapsed", "data-since": c.placed_at, text: " " + since(c.placed_at) }));
    if (c.claimed_by) {
      box.append(el("span", { class: "claimed", text: `✓ Claimed by ${c.claimed_by}` }));
    } else if (Board.canAct) {
      const b = el("button", { type: "button", class: "claim", text: `Claim call in room ${view.room}` });
      b.addEventListener("click", () => Board.claim(view.room, c.call_id, b));
      box.append(b);
    } else {
      box.append(el("span", { class: "unclaimed", text: "not claimed" }));
    }
    if (c.status !== "claimed" && (!prev || !prev.startsWith(c.call_id + "|" + c.status))) {
      announce.textContent = `Room ${view.room}: ${what.toLowerCase()}, ${LEVEL_WORD[c.level].toLowerCase()} priority`;
    }
  }

  // The room's latest staff command and what the room answered (never the HTTP 200 alone).
  const COMMAND_SHOWN_MS = 10 * 60 * 1000;

  function showCommand(tile, c) {
    const key = c ? c.request_id + "|" + c.status : "none";
    if (key === tile.commandKey) return;
    tile.commandKey = key;
    const p = tile.parts.command;
    p.dataset.status = c ? c.status : "";
    p.dataset.requestId = c ? c.request_id || "" : "";
    p.textContent = c ? Board.commandText(c) : "";
  }

  function renderCommand(tile, view) {
    const c = (view.commands || [])[0];
    const recent = c && Board.now() - Date.parse(c.sent_at) < COMMAND_SHOWN_MS;
    // a refusal by the board itself (offline, broker down) stays until the next command
    if (tile.commandKey === "not-sent" && (!c || c.request_id === tile.notSentAfter)) return;
    showCommand(tile, recent ? c : null);
  }

  function renderActions(tile, view) {
    const p = tile.parts;
    if (!Board.canAct) return;
    const busy = (view.commands || []).some((c) => c.name === "claim" && c.status === "sent");
    p.offlineNote.hidden = !view.offline;
    p.phaseButton.disabled = view.offline;
    p.phaseButton.title = view.offline ? Board.OFFLINE_TEXT : "";
    const b = p.call.querySelector("button.claim");
    if (b) {
      b.disabled = view.offline || busy;
      b.title = view.offline ? Board.OFFLINE_TEXT : "";
    }
  }

  document.addEventListener("command-sent", (ev) => {
    const tile = tiles.get(ev.detail.room);
    if (!tile) return;
    const known = (tile.view.commands || []).find((c) => c.request_id === ev.detail.command.request_id);
    if (!known) showCommand(tile, ev.detail.command); // the room view may already be ahead
  });

  document.addEventListener("command-failed", (ev) => {
    const tile = tiles.get(ev.detail.room);
    if (!tile) return;
    const c = (tile.view.commands || [])[0];
    tile.commandKey = "not-sent";
    tile.notSentAfter = c ? c.request_id : undefined;
    const p = tile.parts.command;
    p.dataset.status = "not sent";
    p.dataset.requestId = "";
    p.textContent = `✕ ${Board.commandLabel(ev.detail)}: not sent: ${ev.detail.message}`;
  });

  function renderList(tile, keyName, ul, items, build) {
    const key = JSON.stringify(items);
    if (key === tile[keyName]) return;
    tile[keyName] = key;
    ul.replaceChildren(...items.map(build));
  }

  function render(view) {
    let tile = tiles.get(view.room);
    if (!tile) { tile = skeleton(view.room); tiles.set(view.room, tile); place(view.room, tile); }
    tile.view = view;
    const p = tile.parts;
    const node = tile.node;
    node.classList.toggle("offline", view.offline);
    p.avail.textContent = view.offline ? "✕ OFFLINE" : view.availability === "online" ? "● online" : "? unknown";
    p.phase.textContent = PHASE_NAME[view.phase] || (view.phase ? view.phase : "no state yet");
    node.dataset.phase = view.phase || "";
    p.phaseTime.dataset.since = view.phase_since || "";
    p.phaseTime.textContent = (view.overrun ? "⏰ overrun · " : "") + since(view.phase_since);
    renderCall(tile, view);
    renderActions(tile, view);
    renderCommand(tile, view);
    const v = view.vitals;
    p.v.spo2.textContent = v ? num(v.spo2) : "–";
    p.v.hr.textContent = v ? num(v.hr) : "–";
    p.v.nibp.textContent = nibpText(view);
    node.classList.toggle("demo", !!view.demo);
    p.v.rr.textContent = v ? num(v.rr) : "–";
    if (v) node.dataset.vitalsSeq = String(v.seq);
    renderList(tile, "alertsKey", p.alerts, view.alerts, (a) => el("li", { class: "alert lvl-" + a.severity },
      el("span", { class: "mark", "aria-hidden": "true", text: LEVEL_MARK[a.severity] || "!" }),
      ` ${LEVEL_WORD[a.severity] || a.severity} alert: ${a.name} (${a.field} ${num(a.value, 0)}, limit ${num(a.threshold, 0)})`));
    renderList(tile, "troubleKey", p.trouble, view.trouble, (t) => el("li", { class: "trouble-item" },
      el("span", { class: "mark", "aria-hidden": "true", text: "⚠" }), " device: " + t));
    if (p.phaseButton && !p.phaseButton.dataset.wired) {
      p.phaseButton.dataset.wired = "1";
      p.phaseButton.addEventListener("click", () => Board.openPhaseDialog(view.room, tile.view.phase));
    }
    tick(tile);
    node.dataset.version = String(view.version);
    document.dispatchEvent(new CustomEvent("room-view", { detail: view }));
  }

  // The last blood pressure with its age (issue 18): NIBP is measured every few minutes,
  // so an old one is shown as old ("12 min ago"), never as current.
  function nibpText(view) {
    const n = view.nibp;
    if (!n || n.sys === null) return "–";
    const age = n.age_s + Math.max(0, (Board.now() - n.at_ms) / 1000);
    const text = `${num(n.sys)}/${num(n.dia)}`;
    return age >= 60 ? `${text} (${Math.round(age / 60)} min ago)` : text;
  }

  function tick(tile) {
    const view = tile.view;
    if (!view) return;
    const age = view.vitals_received_ms ? Board.now() - view.vitals_received_ms : null;
    const stale = view.offline || age === null || age > 5000;
    tile.parts.vitals.classList.toggle("stale", stale);
    tile.parts.vitalsAge.textContent = age === null ? "no vitals received" :
      stale ? `⌛ stale: last reading ${duration(age)} ago` : "";
    tile.parts.phaseTime.textContent = (view.overrun ? "⏰ overrun · " : "") + since(view.phase_since);
    tile.parts.v.nibp.textContent = nibpText(view);
    renderCommand(tile, view);
    const el2 = tile.parts.call.querySelector(".call-elapsed");
    if (el2) el2.textContent = " " + since(el2.dataset.since);
  }

  setInterval(() => tiles.forEach(tick), 1000);
  const only = grid.dataset.onlyRoom;
  Board.connect(only ? "/api/stream?room=" + encodeURIComponent(only) : "/api/stream", { room: render });
})();
