// Overview: one tile per room, updated from the live stream. A tile's skeleton is built once
// and its parts are updated in place, so focus (keyboard users) survives updates.
"use strict";

(() => {
  const { el, since, num, duration, LEVEL_MARK, LEVEL_WORD, PHASE_NAME } = Board;
  const tiles = new Map(); // room -> {node, parts, view, callKey}
  const only = document.getElementById("tiles").dataset.onlyRoom;
  const me = document.body.dataset.user;
  const charge = document.body.dataset.role === "charge";
  let assigned = {}; // room -> nurse, the charge nurse's assignments for the shift
  let nurses = [];
  const grid = document.getElementById("tiles");
  const announce = document.getElementById("announce");

  function skeleton(room) {
    const parts = {
      avail: el("span", { class: "avail" }),
      phase: el("span", { class: "phase-name" }),
      phaseTime: el("span", { class: "phase-time" }),
      call: el("div", { class: "call", "data-status": "idle" }),
      unknown: el("p", { class: "call-unknown", hidden: true }),
      moreCalls: el("ul", { class: "more-calls", "aria-label": "more calls in this room" }),
      modes: el("p", { class: "modes" }),
      vitals: el("dl", { class: "vitals" }),
      vitalsAge: el("p", { class: "vitals-age" }),
      alerts: el("ul", { class: "alerts", "aria-label": "active alerts" }),
      trouble: el("ul", { class: "trouble", "aria-label": "device trouble" }),
      actions: el("div", { class: "actions" }),
      command: el("p", { class: "cmd-status", role: "status", "aria-live": "polite" }),
      assigned: el("span", { class: "assigned" }),
    };
    if (charge) {
      parts.assignSelect = el("select", { class: "assign", "aria-label": `Nurse for room ${room}` });
      parts.assignSelect.addEventListener("change", () => {
        const nurse = parts.assignSelect.value || null;
        parts.assignSelect.disabled = true;
        parts.assignError.textContent = "";
        Board.post("/api/assignments", { room, nurse })
          .catch((e) => { parts.assignError.textContent = "✕ not assigned: " + e.message; })
          .finally(() => { parts.assignSelect.disabled = false; parts.assignSelect.dataset.key = ""; });
      });
      parts.assignError = el("span", { class: "assign-error", role: "status" });
      parts.assigned.append(parts.assignSelect, parts.assignError);
    }
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
      parts.actions.append(parts.phaseButton);
      if (only) { // the room's own page: a test call, asked of the room and audited
        parts.testButton = el("button", { type: "button", class: "test-call-button", text: "Send test call" });
        parts.testButton.addEventListener("click", () => {
          parts.testButton.disabled = true;
          Board.send(room, "test_call", "", {}).catch(() => {}).finally(() => { parts.testButton.disabled = false; });
        });
        parts.actions.append(" ", parts.testButton);
      }
      parts.actions.append(parts.offlineNote);
    }
    const node = el("article", { class: "tile", id: "room-" + room, "data-room": room,
      "aria-labelledby": "title-" + room },
      el("header", {},
        el("h2", { id: "title-" + room }, el("a", { href: "/rooms/" + encodeURIComponent(room), text: "Room " + room })),
        parts.avail),
      el("p", { class: "phase" }, parts.phase, " · ", parts.phaseTime, " ", parts.assigned),
      parts.unknown, parts.call, parts.moreCalls, parts.modes, parts.vitals, parts.vitalsAge, parts.alerts, parts.trouble, parts.actions,
      parts.command);
    return { node, parts, view: null, callKey: null, alertsKey: null, troubleKey: null, commandKey: null };
  }

  // A nurse sees her own rooms first (the charge nurse's assignments), then the others.
  function order(a, b) {
    const mine = (r) => (assigned[r] === me ? 0 : 1);
    return mine(a) - mine(b) || (a < b ? -1 : a > b ? 1 : 0);
  }

  function place(room, tile) {
    const rooms = [...tiles.keys()].sort(order);
    const idx = rooms.indexOf(room);
    const next = rooms[idx + 1];
    grid.insertBefore(tile.node, next ? tiles.get(next).node : null);
    document.getElementById("empty").hidden = true;
  }

  function renderAssignment(room, tile) {
    const nurse = assigned[room] || "";
    tile.node.dataset.assigned = nurse;
    tile.node.classList.toggle("mine", !!me && nurse === me);
    const p = tile.parts;
    if (!charge) {
      p.assigned.textContent = nurse ? (nurse === me ? "★ your room" : "nurse: " + nurse) : "unassigned";
      return;
    }
    const key = JSON.stringify([nurse, nurses]);
    if (p.assignSelect.dataset.key === key) return;
    p.assignSelect.dataset.key = key;
    p.assignSelect.replaceChildren(el("option", { value: "", text: "— unassigned —" }),
      ...nurses.map((n) => el("option", { value: n, text: n })));
    p.assignSelect.value = nurse;
  }

  document.addEventListener("site", (ev) => {
    const next = ev.detail.assignments || {};
    nurses = ev.detail.nurses || [];
    const changed = JSON.stringify(next) !== JSON.stringify(assigned);
    assigned = next;
    tiles.forEach((tile, room) => renderAssignment(room, tile));
    if (changed) [...tiles.keys()].sort(order).forEach((room) => grid.append(tiles.get(room).node));
  });

  function callWhat(c) {
    if (c.type === "normal" && c.priority === "infusion") return "CALL (infusion)";
    if (c.type === "cord_out") return "CORD OUT (trouble)";
    if (c.type === "test") return "TEST CALL (not a patient)";
    return c.what || (c.priority === "emergency" ? "EMERGENCY CALL" : "CALL");
  }

  // One call: what, level, tier, elapsed, and its claim (each call is claimed on its own).
  function callParts(node, view, c, buttonName) {
    const what = callWhat(c);
    node.append(el("span", { class: "mark", "aria-hidden": "true", text: LEVEL_MARK[c.level] }),
      el("strong", { class: "call-what", text: `${what} · ${LEVEL_WORD[c.level]}` }));
    if (c.status === "escalated") node.append(el("span", { class: "escalated", text: "⬆ ESCALATED" }));
    if (c.tier > 1) node.append(el("span", { class: "tier", text: ` tier ${c.tier}` }));
    if (c.reminders) node.append(el("span", { class: "reminder", text: ` ⟳ not cleared (reminder ${c.reminders})` }));
    node.append(el("span", { class: "call-elapsed", "data-placed": c.placed_at,
      "data-escalated": c.escalated_at || "", text: Board.callTimes(c) }));
    const paged = Board.deliveryText(c.deliveries);
    if (paged) node.append(el("span", { class: "paged", text: paged }));
    if (c.claimed_by) {
      node.append(el("span", { class: "claimed", text: `✓ responding: ${c.claimed_by}` }));
    } else if (Board.canAct) {
      const b = el("button", { type: "button", class: "claim", text: buttonName });
      b.addEventListener("click", () => Board.claim(view.room, c.call_id, b));
      node.append(b);
    } else {
      node.append(el("span", { class: "unclaimed", text: "not claimed" }));
    }
    return what;
  }

  function renderCall(tile, view) {
    const calls = view.calls || (view.call ? [view.call] : []);
    const key = JSON.stringify(calls.map((c) => [c.call_id, c.status, c.level, c.claimed_by, c.tier, c.reminders,
      c.deliveries]));
    if (key === tile.callKey) return;
    const prev = tile.callKeys || new Set();
    tile.callKey = key;
    tile.callKeys = new Set(calls.map((c) => c.call_id + "|" + c.status));
    const box = tile.parts.call;
    box.replaceChildren();
    box.className = "call";
    const c = calls[0];
    box.dataset.status = c ? c.status : "idle";
    box.dataset.count = String(calls.length);
    tile.parts.moreCalls.replaceChildren();
    if (!c) { box.append(el("span", { class: "no-call", text: "no call" })); return; }
    box.classList.add("lvl-" + c.level);
    if (calls.some((x) => x.type === "emergency" || x.priority === "emergency")) box.classList.add("emergency");
    box.dataset.type = c.type || "";
    callParts(box, view, c, `Claim call in room ${view.room}`);
    for (const other of calls.slice(1)) {
      const li = el("li", { class: "more-call lvl-" + other.level, "data-status": other.status,
        "data-type": other.type, "data-call-id": other.call_id });
      callParts(li, view, other, `Claim ${callWhat(other).toLowerCase()} in room ${view.room}`);
      tile.parts.moreCalls.append(li);
    }
    const fresh = calls.find((x) => x.status !== "claimed" && !prev.has(x.call_id + "|" + x.status));
    if (fresh) {
      announce.textContent = `Room ${view.room}: ${callWhat(fresh).toLowerCase()}, ${LEVEL_WORD[fresh.level].toLowerCase()} priority`;
    }
  }

  // Staff presence and cleaning mode, in words (never colour alone).
  function renderModes(tile, view) {
    const bits = [];
    if (view.presence) bits.push(el("span", { class: "presence", text: "Staff present " + since(view.presence.since) }));
    if (view.cleaning) bits.push(el("span", { class: "cleaning", text: "Cleaning mode" }));
    if (view.cord_out) bits.push(el("span", { class: "cord-out", text: "⚠ Call cord out" }));
    const key = JSON.stringify([!!view.presence, !!view.cleaning, view.cord_out]);
    tile.parts.modes.dataset.presence = view.presence ? "yes" : "no";
    tile.parts.modes.dataset.cleaning = view.cleaning ? "yes" : "no";
    if (key === tile.modesKey) return;
    tile.modesKey = key;
    tile.parts.modes.replaceChildren(...bits);
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

  // Never a false "no call": an offline room, or a board without its broker link, cannot know.
  function renderUnknown(tile, view) {
    const p = tile.parts;
    const linkDown = !Board.linkUp();
    const unknown = view.offline || linkDown;
    p.unknown.hidden = !unknown;
    p.call.hidden = unknown && !(view.calls || []).length;
    tile.node.dataset.callStatus = unknown ? "unknown" : "known";
    if (!unknown) return;
    const why = linkDown ? "the board's broker link is down"
      : view.offline_since ? Board.offlineText(view.offline_since) : "room offline";
    p.unknown.textContent = `? call status unknown · ${why}` +
      ((view.calls || []).length ? " (calls below: last known)" : "");
  }

  function renderActions(tile, view) {
    const p = tile.parts;
    if (!Board.canAct) return;
    const busy = (view.commands || []).some((c) => c.name === "claim" && c.status === "sent");
    const linkDown = !Board.linkUp();
    const why = view.offline ? Board.OFFLINE_TEXT : linkDown ? "broker link down: commands are not sent" : "";
    p.offlineNote.hidden = !view.offline;
    p.phaseButton.disabled = view.offline || linkDown;
    p.phaseButton.title = why;
    if (p.testButton) {
      p.testButton.disabled = view.offline || linkDown;
      p.testButton.title = why || "the room places a TEST call: it lights the dome and reaches this board and the assigned nurse's phone";
    }
    for (const b of tile.node.querySelectorAll("button.claim")) {
      b.disabled = view.offline || linkDown || busy;
      b.title = why;
    }
  }

  document.addEventListener("link", () => tiles.forEach((tile) => {
    if (!tile.view) return;
    renderUnknown(tile, tile.view);
    renderActions(tile, tile.view);
  }));

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
    if (!tile) {
      tile = skeleton(view.room);
      tiles.set(view.room, tile);
      place(view.room, tile);
      renderAssignment(view.room, tile);
    }
    tile.view = view;
    const p = tile.parts;
    const node = tile.node;
    node.classList.toggle("offline", view.offline);
    p.avail.textContent = view.offline ? "✕ OFFLINE" : view.availability === "online" ? "● online" : "? unknown";
    p.phase.textContent = PHASE_NAME[view.phase] || (view.phase ? view.phase : "no state yet");
    node.dataset.phase = view.phase || "";
    p.phaseTime.dataset.since = view.phase_since || "";
    p.phaseTime.textContent = (view.overrun ? "OVERRUN · " : "") + since(view.phase_since);
    renderCall(tile, view);
    renderUnknown(tile, view);
    renderModes(tile, view);
    renderActions(tile, view);
    renderCommand(tile, view);
    const v = view.vitals;
    p.v.spo2.textContent = v ? num(v.spo2) : "–";
    p.v.hr.textContent = v ? num(v.hr) : "–";
    p.v.nibp.textContent = nibpText(view);
    node.classList.toggle("demo", !!view.demo);
    p.v.rr.textContent = v ? num(v.rr) : "–";
    const oor = view.out_of_range || {};
    for (const key of ["spo2", "hr", "nibp", "rr"]) {
      p.v[key].className = "v-" + key + (oor[key] ? " oor lvl-" + oor[key] : "");
      p.v[key].title = oor[key] ? `out of range (${LEVEL_WORD[oor[key]]})` : "";
    }
    if (v) node.dataset.vitalsSeq = String(v.seq);
    renderList(tile, "alertsKey", p.alerts, view.alerts, (a) => el("li", { class: "alert lvl-" + a.severity },
      el("span", { class: "mark", "aria-hidden": "true", text: LEVEL_MARK[a.severity] || "!" }),
      a.source === "monitor" ? ` ${LEVEL_WORD[a.severity] || a.severity} monitor alarm: ${a.name}` :
      ` ${LEVEL_WORD[a.severity] || a.severity} alert: ${a.name} (${a.field} ${num(a.value, 0)}, limit ${num(a.threshold, 0)})`));
    renderList(tile, "troubleKey", p.trouble, view.trouble, (t) => el("li", { class: "trouble-item" },
      el("span", { class: "mark", "aria-hidden": "true", text: "⚠" }), " device: " + t));
    if (p.phaseButton && !p.phaseButton.dataset.wired) {
      p.phaseButton.dataset.wired = "1";
      p.phaseButton.addEventListener("click", () => Board.openPhaseDialog(view.room, tile.view));
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
    // the time of the last reading on the site's clock, never "last reading 0:00 ago"
    const last = view.vitals_received_ms;
    tile.parts.vitalsAge.textContent = age === null ? "no vitals received yet"
      : view.offline ? `offline: no reading since ${Board.siteTime(last)}`
      : stale ? `stale: no reading since ${Board.siteTime(last, { seconds: true })}` : "";
    tile.parts.phaseTime.textContent = (view.overrun ? "OVERRUN · " : "") + since(view.phase_since);
    tile.parts.v.nibp.textContent = nibpText(view);
    renderCommand(tile, view);
    for (const el2 of tile.node.querySelectorAll(".call-elapsed")) {
      el2.textContent = Board.callTimes({ placed_at: el2.dataset.placed, escalated_at: el2.dataset.escalated });
    }
    if (view.offline) renderUnknown(tile, view);
    const pres = tile.parts.modes.querySelector(".presence");
    if (pres && view.presence) pres.textContent = "Staff present " + since(view.presence.since);
  }

  setInterval(() => tiles.forEach(tick), 1000);

  // Wall mode: compact tiles beside the queue, 24 rooms on one 1920x1080 screen (?wall=1 or
  // the button; remembered on this screen).
  const wallButton = document.getElementById("wall-toggle");
  function setWall(on) {
    document.body.classList.toggle("wall", on);
    localStorage.setItem("roomctl-wall", on ? "on" : "off");
    if (wallButton) wallButton.setAttribute("aria-pressed", on ? "true" : "false");
  }
  const wallParam = new URLSearchParams(location.search).get("wall");
  const kiosk = document.body.classList.contains("kiosk"); // a wall display: always the wall layout
  if (!only) setWall(kiosk || (wallParam !== null ? wallParam === "1" : localStorage.getItem("roomctl-wall") === "on"));
  if (wallButton) wallButton.addEventListener("click", () => setWall(!document.body.classList.contains("wall")));
  Board.connect(only ? "/api/stream?room=" + encodeURIComponent(only) : "/api/stream", { room: render });
})();
