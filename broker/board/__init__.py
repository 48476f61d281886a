"""The staff board: every room of a site live in the browser (`roomctl board`) and in the
terminal (`roomctl status`).

Pieces, pure core first:

- `live.py`     SiteState: the latest retained state, call, health, vitals and recent events of
                every room, built from MQTT payloads (no paho, no asyncio), and the JSON view of
                a room that the browser and the terminal both draw.
- `feed.py`     the paho adapter: subscribes to the site, feeds SiteState, publishes `cmd/`.
- `hub.py`      asyncio fan-out of "room changed" to server-sent-event streams (coalescing).
- `users.py`    the board's own SQLite database: staff accounts (argon2 hashes), login
                sessions, the audit log of actions.
- `security.py` login rate limit, CSRF tokens, loopback check.
- `history.py`  read-only queries of the logger's database (session vitals, events, calls).
- `svg_chart.py` server-side SVG charts for the printable session report.
- `app.py`      the Starlette application.
"""
