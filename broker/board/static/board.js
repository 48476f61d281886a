// Shared by every board page: the live stream, clocks, formatting, actions, phase dialog.
// No framework, no build step. Everything is drawn with textContent (never innerHTML).
"use strict";

const Board = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const canAct = document.body.dataset.canAct === "yes";
  let offsetMs = 0; // server clock - browser clock
  const LEVEL_MARK = { high: "!!!", medium: "!!", low: "!" };
  const LEVEL_WORD = { high: "HIGH", medium: "MEDIUM", low: "LOW" };
  const PHASE_NAME = {
    idle: "Idle", pre_check: "Pre-check", infusion: "Infusion",
    recovery: "Recovery", discharge_ready: "Discharge ready",
  };

  function now() { return Date.now() + offsetMs; }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return "–";
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = String(m).padStart(2, "0"), ss = String(sec).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }

  function since(iso) { return iso ? duration(now() - Date.parse(iso)) : "–"; }

  // The site's clock (contract/sitetime.py on the server): "23:18 EST", in the zone the server
  // names on every page, never the browser's own; the zone's abbreviation is the server's,
  // looked up by the offset Intl gives for that moment.
  const zoneMeta = document.querySelector('meta[name="site-timezone"]');
  const SITE_TZ = (zoneMeta && zoneMeta.content) || "UTC";
  const ZONE_ABBR = zoneMeta ? JSON.parse(zoneMeta.dataset.abbrevs || "{}") : {};
  const partsFmt = new Intl.DateTimeFormat("en-GB", {
    timeZone: SITE_TZ, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const offsetFmt = new Intl.DateTimeFormat("en-US", { timeZone: SITE_TZ, timeZoneName: "longOffset" });

  function siteParts(ms) {
    const out = {};
    for (const p of partsFmt.formatToParts(new Date(ms))) if (p.type !== "literal") out[p.type] = p.value;
    if (out.hour === "24") out.hour = "00";
    return out;
  }

  function zoneName(ms) {
    const part = offsetFmt.formatToParts(new Date(ms)).find((p) => p.type === "timeZoneName");
    const text = part ? part.value : "GMT";
    const m = /GMT([+-])(\d{2}):(\d{2})/.exec(text);
    const minutes = m ? (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
    return ZONE_ABBR[String(minutes)] || text;
  }

  // "23:18 EST" ({seconds: true}: "23:18:05 EST"; {zone: false}: "23:18")
  function siteTime(when, opts) {
    if (when === null || when === undefined || when === "") return "–";
    const ms = typeof when === "number" ? when : Date.parse(when);
    if (isNaN(ms)) return "–";
    const o = opts || {};
    const p = siteParts(ms);
    let text = `${p.hour}:${p.minute}` + (o.seconds ? `:${p.second}` : "");
    if (o.zone !== false) text += " " + zoneName(ms);
    return text;
  }

  // "2026-11-30" (the site's local day)
  function siteDay(when) {
    const p = siteParts(typeof when === "number" ? when : Date.parse(when));
    return `${p.year}-${p.month}-${p.day}`;
  }

  function clockTime(iso) { return siteTime(iso); }

  function minutesSince(iso) {
    return iso ? Math.max(0, Math.floor((now() - Date.parse(iso)) / 60000)) + " min" : "–";
  }

  // The notifier's pages for a call: "paged: nina ✓ ntfy · omar ⟳ ntfy (HTTP 503)"
  const DELIVERY_MARK = { delivered: "✓", pending: "⟳", failed: "✕", cancelled: "–" };
  function deliveryText(list) {
    if (!list || !list.length) return "";
    return "paged: " + list.map((d) => `${d.recipient} ${DELIVERY_MARK[d.status] || "?"} ${d.channel}` +
      (d.status === "delivered" ? "" : ` (${d.detail})`) + (d.tier > 1 ? ` t${d.tier}` : "")).join(" · ");
  }

  function offlineText(iso) { return `offline since ${clockTime(iso)} (${minutesSince(iso)})`; }

  // "placed 11:13 · escalated 9:43" (time since each), or the claim: "responding: nina"
  function callTimes(c) {
    let text = "placed " + since(c.placed_at);
    if (c.escalated_at) text += " · escalated " + since(c.escalated_at);
    return text;
  }

  function num(v, digits) {
    return v === null || v === undefined ? "–" : Number(v).toFixed(digits || 0);
  }

  // The board's own link (its stream, and the server's broker link). While it is down every
  // tile is dimmed, actions are disabled and a full-width banner says so: never a false "no call".
  let linkUp = false;

  function setLink(site) {
    const link = document.getElementById("link");
    if (!link) return;
    const parts = [];
    let ok = site.broker_connected;
    parts.push(ok ? "● live" : "✕ broker link down: data is not live");
    const loggers = site.loggers || {};
    for (const name of Object.keys(loggers)) {
      if (loggers[name] === "offline") { parts.push((name ? "logger " + name : "logger") + " offline"); ok = false; }
    }
    const named = Object.keys(loggers).filter((n) => n);
    if (named.length > 1 && ok) { parts.push(named.length + " loggers online"); }
    link.textContent = parts.join(" · ");
    link.className = "link " + (ok ? "ok" : "down");
    const up = !!site.broker_connected;
    document.body.classList.toggle("link-down", !up);
    const banner = document.getElementById("link-banner");
    if (banner) banner.hidden = up;
    if (up !== linkUp) { linkUp = up; told("link", { up }); }
  }

  function connect(path, handlers) {
    let es = null;
    let attempts = 0;
    document.getElementById("link").textContent = "connecting…";
    function open() {
      es = new EventSource(path);
      es.addEventListener("site", (ev) => {
        const site = JSON.parse(ev.data);
        offsetMs = site.server_now_ms - Date.now();
        setLink(site);
        if (handlers.site) handlers.site(site);
        told("site", site);
      });
      es.addEventListener("room", (ev) => { if (handlers.room) handlers.room(JSON.parse(ev.data)); });
      es.addEventListener("queue", (ev) => told("queue", JSON.parse(ev.data)));
      es.onopen = () => { attempts = 0; };
      es.onerror = () => {
        setLink({ broker_connected: false });
        if (es.readyState === EventSource.CLOSED) {
          // refused (401 after session expiry) or server gone: check, then retry (bounded backoff)
          fetch("/api/whoami", { credentials: "same-origin" }).then((r) => {
            if (r.status === 401) location.href = "/login?next=" + encodeURIComponent(location.pathname);
          }).catch(() => {});
          attempts += 1;
          setTimeout(open, Math.min(30000, 1000 * attempts));
        }
      };
    }
    open();
  }

  async function post(path, body) {
    const r = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await r.json(); } catch (e) { data = { error: r.statusText }; }
    if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
    return data;
  }

  // -- staff commands ---------------------------------------------------------------------
  // A 200 only means the broker took the command: the tile then shows what the room itself
  // answered (the server's command table, in each room view: sent, applied, refused, no answer).
  const OFFLINE_TEXT = "room offline: commands are not sent";

  function commandLabel(c) {
    if (c.name === "phase") return "Phase → " + (PHASE_NAME[c.what] || c.what || "?");
    if (c.name === "claim") return "Claim";
    if (c.name === "test_call") return "Test call";
    return c.name.charAt(0).toUpperCase() + c.name.slice(1) + (c.what ? " " + c.what : "");
  }

  function commandText(c) {
    const who = `${commandLabel(c)} by ${c.by}`;
    if (c.status === "applied") return `✓ ${who}: applied by the room`;
    if (c.status === "refused") return `✕ ${who}: refused: ${c.reason || "no reason given"}`;
    if (c.status === "no answer") return `? ${who}: no answer from the room (not confirmed)`;
    return `… ${who}: sent, waiting for the room`;
  }

  function told(kind, detail) { document.dispatchEvent(new CustomEvent(kind, { detail })); }

  function send(room, name, what, body) {
    return post(`/api/rooms/${encodeURIComponent(room)}/${name}`, body).then((data) => {
      told("command-sent", { room, command: { request_id: data.request_id, name, what,
        by: data.sent && data.sent.by, status: "sent", reason: null } });
      return data;
    }, (e) => {
      told("command-failed", { room, name, what, message: e.message });
      throw e;
    });
  }

  function claim(room, callId, button) {
    if (button) button.disabled = true;
    return send(room, "claim", "call " + callId, { call_id: callId })
      .catch(() => { if (button) button.disabled = false; });
  }

  // -- phase dialog (nurses only) -------------------------------------------------------
  // Only the phases the room allows next (the contract's table, in the room's view); discharge
  // stays greyed until the room's minimum recovery has passed.
  function openPhaseDialog(room, view) {
    const dlg = document.getElementById("phase-dialog");
    if (!dlg) return;
    const currentPhase = view && view.phase;
    document.getElementById("phase-room").textContent = room;
    document.getElementById("phase-now").textContent = PHASE_NAME[currentPhase] || currentPhase || "unknown";
    document.getElementById("phase-error").textContent = "";
    const select = document.getElementById("phase-select");
    const options = ((view && view.next_phases) || []).map((p) => {
      const early = p === "discharge_ready" && view.min_recovery_end && now() < Date.parse(view.min_recovery_end);
      const label = (p === "idle" ? "Idle (end session)" : PHASE_NAME[p] || p) +
        (early ? ` (not before ${clockTime(view.min_recovery_end)}: minimum recovery)` : "");
      return el("option", { value: p, text: label, disabled: early });
    });
    select.replaceChildren(...options);
    const first = options.find((o) => !o.disabled);
    if (first) select.value = first.value;
    document.getElementById("phase-confirm").disabled = !first;
    if (!first) document.getElementById("phase-error").textContent = "no phase change is possible now";
    dlg.dataset.room = room;
    dlg.returnValue = "";
    dlg.showModal();
  }

  function wirePhaseDialog() {
    const dlg = document.getElementById("phase-dialog");
    if (!dlg) return;
    dlg.addEventListener("close", () => {
      if (dlg.returnValue !== "confirm") return;
      const room = dlg.dataset.room;
      const phase = document.getElementById("phase-select").value;
      const minutes = document.getElementById("phase-minutes").value;
      const body = { phase: phase, confirm: true };
      if (minutes) body.planned_minutes = Number(minutes);
      send(room, "phase", phase, body).catch((e) => {
        document.getElementById("phase-error").textContent = "phase change failed: " + e.message;
        dlg.showModal();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", wirePhaseDialog);

  return {
    csrf, canAct, now, el, duration, since, num, connect, post, send, claim, openPhaseDialog,
    clockTime, siteTime, siteDay, zoneName, SITE_TZ, minutesSince, offlineText, callTimes, deliveryText, linkUp: () => linkUp,
    commandLabel, commandText, OFFLINE_TEXT, LEVEL_MARK, LEVEL_WORD, PHASE_NAME,
  };
})();
