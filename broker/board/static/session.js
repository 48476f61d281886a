// The login on this screen: ten minutes before it ends, a banner asks for the password again
// and renews it in place (nothing reloads, the stream stays); a kiosk (a wall display's device
// login, days long) never sees it, and gets a clock and the wall layout instead.
"use strict";

(() => {
  const WARN_MS = 10 * 60 * 1000;
  const body = document.body;
  const banner = document.getElementById("renew-banner");
  const clock = document.getElementById("clock");
  const kiosk = body.classList.contains("kiosk");

  function expires() { return Number(body.dataset.expires || 0); }

  function tick() {
    const now = Board.now();
    if (clock && kiosk) {
      clock.textContent = Board.siteTime(now, { seconds: true });
    }
    const end = expires();
    if (!banner || kiosk || !end) return;
    const left = end - now;
    const warn = left <= WARN_MS;
    banner.hidden = !warn;
    body.classList.toggle("login-ending", warn);
    if (warn) {
      document.getElementById("renew-text").textContent = left > 0
        ? `Your login ends at ${Board.siteTime(end)} (in ${Board.duration(left)}): enter your password to stay logged in.`
        : "Your login has ended: enter your password to carry on.";
    }
  }

  if (banner) {
    banner.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = document.getElementById("renew-password");
      const error = document.getElementById("renew-error");
      error.textContent = "";
      Board.post("/api/session/renew", { password: input.value }).then((data) => {
        body.dataset.expires = String(data.expires_ms);
        input.value = "";
        tick();
      }, (e) => { error.textContent = e.message; input.value = ""; });
    });
  }
  tick();
  setInterval(tick, 1000);
})();
