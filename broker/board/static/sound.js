// The board's sound: alarm patterns per level made in the page (Web Audio), nothing fetched.
//
// How this works: the queue (queue.js) hands over its items, most urgent first. Every 250 ms the
// highest level among items that still sound (a call not yet claimed, an alarm, an offline
// room) and are not silenced on this screen picks the pattern; a change of level stops the old
// pattern at once and starts the new one; otherwise the burst repeats at its level's interval.
// Patterns after IEC 60601-1-8: high = a fast burst of ten pulses (3+2, 3+2), medium = three
// pulses, low = two. Browsers keep sound off until a person interacts, so sound starts with
// the shift-start click (remembered for the tab: after a page change any click resumes it) and
// a banner that cannot be missed stays while sound is off or blocked. An emergency call cannot
// be silenced.
"use strict";

const Sound = (() => {
  const PATTERNS = {
    high: { freq: 880, pulses: [0, 0.2, 0.4, 0.8, 1.0, 1.9, 2.1, 2.3, 2.7, 2.9], everyMs: 6000 },
    medium: { freq: 660, pulses: [0, 0.3, 0.6], everyMs: 8000 },
    low: { freq: 523, pulses: [0, 0.4], everyMs: 16000 },
  };
  const PULSE_S = 0.15;
  const SILENCE_MS = 3 * 60 * 1000;
  const KEY = "roomctl-sound";
  let ctx = null;
  let wanted = sessionStorage.getItem(KEY) === "on";
  let items = [];
  let current = null; // the level whose pattern is playing, or null
  let nextBurst = 0;
  let nodes = [];
  const silenced = new Map(); // queue key -> silenced until (ms)

  function state() {
    if (!wanted) return "off";
    return ctx && ctx.state === "running" ? "on" : "blocked";
  }

  function showBanner() {
    const banner = document.getElementById("sound-banner");
    if (!banner) return;
    const s = state();
    document.body.dataset.sound = s;
    banner.hidden = s === "on";
    document.getElementById("sound-banner-text").textContent = s === "blocked"
      ? "SOUND IS BLOCKED by the browser: click anywhere on the page to allow it."
      : "SOUND IS OFF: new calls will not be heard on this screen.";
  }

  function enable() {
    wanted = true;
    sessionStorage.setItem(KEY, "on");
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!ctx && Ctx) {
      ctx = new Ctx();
      ctx.addEventListener("statechange", () => { showBanner(); tick(); });
    }
    if (ctx && ctx.state !== "running") ctx.resume().then(() => { showBanner(); tick(); }, showBanner);
    showBanner();
    tick();
  }

  function pulse(freq, at) {
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(0.2, at + 0.02);
    gain.gain.setValueAtTime(0.2, at + PULSE_S - 0.03);
    gain.gain.linearRampToValueAtTime(0, at + PULSE_S);
    osc.connect(gain);
    gain.connect(ctx.destination);
    osc.start(at);
    osc.stop(at + PULSE_S);
    nodes.push(osc);
    osc.addEventListener("ended", () => { nodes = nodes.filter((n) => n !== osc); });
  }

  function burst(level) {
    const p = PATTERNS[level];
    const t0 = ctx.currentTime + 0.05;
    for (const d of p.pulses) pulse(p.freq, t0 + d);
  }

  function stopAll() {
    for (const n of nodes) {
      try { n.stop(); } catch (e) { /* already stopped */ }
    }
    nodes = [];
  }

  function isSilenced(item) {
    return !item.emergency && (silenced.get(item.key) || 0) > Date.now();
  }

  function wantedLevel() {
    const loud = items.find((i) => i.sounding && !isSilenced(i));
    return loud ? loud.level : null;
  }

  function tick() {
    const level = state() === "on" ? wantedLevel() : null;
    if (level !== current) {
      stopAll();
      current = level;
      nextBurst = 0;
    }
    if (current && PATTERNS[current] && Date.now() >= nextBurst) {
      burst(current);
      nextBurst = Date.now() + PATTERNS[current].everyMs;
    }
    document.body.dataset.soundPattern = current || "none";
  }

  function setItems(list) {
    items = list;
    const keys = new Set(list.map((i) => i.key));
    for (const k of [...silenced.keys()]) if (!keys.has(k)) silenced.delete(k);
    tick();
  }

  // Silence one item on this screen for a few minutes; never an emergency call.
  function silence(item) {
    if (!item || item.emergency) return false;
    silenced.set(item.key, Date.now() + SILENCE_MS);
    tick();
    return true;
  }

  function silencedFor(item) {
    return isSilenced(item) ? silenced.get(item.key) - Date.now() : 0;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("sound-on");
    if (button) button.addEventListener("click", enable);
    // after a page change the tab still wants sound: the first interaction resumes it
    for (const kind of ["pointerdown", "keydown"]) {
      document.addEventListener(kind, () => { if (wanted && state() !== "on") enable(); });
    }
    if (wanted) enable();
    showBanner();
    setInterval(tick, 250);
  });

  return { enable, setItems, silence, silencedFor, state, PATTERNS, SILENCE_MS };
})();
