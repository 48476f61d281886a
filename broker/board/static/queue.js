// The one queue on every page: open calls and HIGH/MEDIUM alarms of the whole site, as the
// server sorted them (level, then age). Each row: level (mark and word), what, room, tier,
// presence, times or who is responding, a Claim button (staff who may act) and, except for an
// emergency, a Silence button for this screen. It also sets the tab title and icon (the number
// of active calls) and hands the items to the sound. Pages without tiles open their own stream.
"use strict";

(() => {
  const { el, since, LEVEL_MARK, LEVEL_WORD } = Board;
  const list = document.getElementById("queue-list");
  if (!list) return;
  const baseTitle = document.title;
  let items = [];
  let assigned = {};
  const me = document.body.dataset.user;
  // Proof of delivery: this screen tells the room, once per call, that the call reached it.
  const screen = sessionStorage.getItem("roomctl-screen") ||
    "s" + Math.random().toString(36).slice(2, 12);
  sessionStorage.setItem("roomctl-screen", screen);
  const receipted = new Set();

  function sendReceipts() {
    if (!Board.linkUp()) return;
    for (const i of items) {
      if (i.kind !== "call" || i.last_known || receipted.has(i.key)) continue;
      receipted.add(i.key);
      Board.post("/api/receipts", { room: i.room, call_id: i.call_id, screen })
        .catch(() => receipted.delete(i.key)); // not sent: the next update tries again
    }
  }

  function proofText(i) {
    const r = i.receipts || { screens: 0, phones: [] };
    const parts = [`seen on ${r.screens} screen${r.screens === 1 ? "" : "s"}`];
    if (r.phones.length) parts.push("phones: " + r.phones.join(", "));
    return parts.join(" · ");
  }

  function itemTime(i) {
    if (i.kind === "technical") return Board.offlineText(i.since);
    if (i.kind === "alarm") return "since " + since(i.since);
    return Board.callTimes(i);
  }

  function row(i) {
    const li = el("li", { class: "q-item lvl-" + i.level, "data-key": i.key, "data-kind": i.kind,
      "data-room": i.room, "data-status": i.status || "", "data-type": i.type || "",
      "data-emergency": i.emergency ? "yes" : "no" });
    li.append(el("span", { class: "mark", "aria-hidden": "true", text: LEVEL_MARK[i.level] }),
      el("strong", { class: "q-level", text: LEVEL_WORD[i.level] }),
      el("strong", { class: "q-what", text: i.what }),
      el("a", { class: "q-room", href: "/rooms/" + encodeURIComponent(i.room), text: "Room " + i.room }));
    if (i.kind === "call") {
      if (i.status === "escalated") li.append(el("span", { class: "q-escalated", text: "⬆ ESCALATED" }));
      li.append(el("span", { class: "q-tier", text: "tier " + i.tier }));
    }
    if (me && assigned[i.room] === me) {
      li.classList.add("mine");
      li.append(el("span", { class: "q-mine", text: "★ your room" }));
    }
    if (i.presence) li.append(el("span", { class: "q-presence", text: "staff in room" }));
    li.append(el("span", { class: "q-time", text: itemTime(i) }));
    if (i.kind === "call" && i.claimed_by) {
      li.append(el("span", { class: "q-claimed", text: "✓ responding: " + i.claimed_by }));
    }
    const paged = Board.deliveryText(i.deliveries);
    if (paged) li.append(el("span", { class: "q-paged", text: paged }));
    if (i.kind === "call") li.append(el("span", { class: "q-proof", text: proofText(i) }));
    if (i.last_known && i.kind !== "technical") {
      li.append(el("span", { class: "q-unknown", text: "? last known: room offline" }));
    }
    li.append(el("span", { class: "q-silenced" }));
    const actions = el("span", { class: "q-actions" });
    if (i.kind === "call" && !i.claimed_by && Board.canAct) {
      const b = el("button", { type: "button", class: "claim", text: "Claim",
        "aria-label": `Claim ${i.what.toLowerCase()} in room ${i.room}` });
      b.disabled = !Board.linkUp() || i.last_known;
      b.addEventListener("click", () => Board.claim(i.room, i.call_id, b));
      actions.append(b);
    }
    if (i.sounding && !i.emergency) {
      const s = el("button", { type: "button", class: "silence", text: "Silence 3 min",
        "aria-label": `Silence ${i.what.toLowerCase()} in room ${i.room} on this screen for 3 minutes` });
      s.addEventListener("click", () => { Sound.silence(i); refresh(); });
      actions.append(s);
    }
    li.append(actions);
    return li;
  }

  function favicon(count, high) {
    const link = document.getElementById("favicon");
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 32;
    const g = canvas.getContext("2d");
    if (!g || !link) return;
    g.fillStyle = count ? (high ? "#c62828" : "#b39500") : "#1b7f3b";
    g.beginPath();
    g.arc(16, 16, 15, 0, 2 * Math.PI);
    g.fill();
    g.fillStyle = "#fff";
    g.font = "bold 20px sans-serif";
    g.textAlign = "center";
    g.textBaseline = "middle";
    g.fillText(count > 99 ? "99" : String(count), 16, 17);
    link.href = canvas.toDataURL("image/png");
  }

  function refresh() {
    for (const li of list.children) {
      const i = items.find((x) => x.key === li.dataset.key);
      if (!i) continue;
      li.querySelector(".q-time").textContent = itemTime(i);
      const left = Sound.silencedFor(i);
      li.querySelector(".q-silenced").textContent = left > 0 ? "silenced " + Board.duration(left) : "";
      li.classList.toggle("silenced", left > 0);
    }
  }

  function render() {
    list.replaceChildren(...items.map(row));
    document.getElementById("queue-empty").hidden = items.length > 0;
    const calls = items.filter((i) => i.kind === "call");
    const open = items.filter((i) => i.sounding);
    document.getElementById("queue-count").textContent = items.length ? `(${items.length})` : "";
    document.title = (calls.length ? `(${calls.length}) ` : "") + baseTitle;
    document.body.dataset.activeCalls = String(calls.length);
    favicon(calls.length, open.some((i) => i.level === "high"));
    refresh();
  }

  document.addEventListener("queue", (ev) => {
    items = ev.detail.items;
    render();
    Sound.setItems(items);
    sendReceipts();
  });
  document.addEventListener("link", () => { render(); sendReceipts(); });
  document.addEventListener("site", (ev) => {
    const next = ev.detail.assignments || {};
    if (JSON.stringify(next) === JSON.stringify(assigned)) return;
    assigned = next;
    render();
  });
  setInterval(refresh, 1000);
  if (!document.getElementById("tiles")) Board.connect("/api/stream?queue=only", {});
})();
