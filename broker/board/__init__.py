"""The staff board: every room of a site live in the browser (`roomctl board`).

Pieces, pure core first:

- `live.py`     SiteState: the latest retained state, call, health, vitals and recent events of
                every room, built from MQTT payloads (no paho, no asyncio), and the JSON view of
                a room that the browser and the terminal (`broker/status/`) both draw.
- `feed.py`     the paho adapter: subscribes to the site, feeds SiteState, publishes `cmd/`.
- `hub.py`      asyncio fan-out of "room changed" to server-sent-event streams (coalescing).
- `users.py`    the board's own SQLite database: staff accounts (argon2 hashes), login
                sessions, the audit log of actions.
- `security.py` login rate limit, CSRF tokens, loopback check.
- `history.py`  the logger's history through its store (`broker/logger/store/`), read-only.
- `session_data.py` one session's window, vitals and events (stored + seen live).
- `svg_chart.py` server-side SVG charts for the printable session report.
- `context.py`  BoardContext: what every handler shares; cookie names.
- `guard.py`    the one login/role/CSRF guard every handler is wrapped in.
- `pages.py`, `api.py` the handlers (HTML pages; JSON, event stream and actions).
- `app.py`      the Starlette application (imports the handlers; they never import it).
- `cli.py`      `roomctl board` and `roomctl board user ...`.
"""
