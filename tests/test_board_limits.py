"""The board's limits (issue 13): one bad client or one bad request cannot take it down.

Real HTTP clients and raw sockets on loopback against the real board (uvicorn with the
board's own server limits), a real Mosquitto, real Chromium for PDFs, and `roomctl board` as
its own process under systemd's default open-files limit for the slow-client flood. Every
attack adds a row to the reliability record.
"""

from __future__ import annotations

import fcntl
import socket
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from broker.board.limits import MAX_BODY_BYTES
from broker.board.security import ServeLimits
from broker.board.server import connection_budget
from broker.mosquitto.run import Mosquitto
from controller.cli import main as roomctl
from tests.support.board import PASSWORDS, BoardServer
from tests.support.board_attacks import (
    WebClient,
    board_process,
    closed_by_server,
    gated_chromium,
    open_stream,
    read_until_closed,
    slow_socket,
    status_of,
    stream_ends,
)
from tests.support.mqtt import wait_until
from tests.support.reliability_audit import FaultRecord, record

pytestmark = pytest.mark.broker


def _attack(name: str, n: int, outcome: str) -> None:
    record(FaultRecord(f"board: {name}", n, None, [], outcome, kind="security"))


def test_huge_bodies_are_refused_before_they_are_read(board: BoardServer) -> None:
    # four requests each declaring 512 MiB: 413 at once, not one byte of the bodies read
    for path in ("/login", "/api/rooms/101/phase", "/logout", "/"):
        sock = socket.create_connection(("127.0.0.1", board.port), timeout=10)
        with sock:
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {512 << 20}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
            )
            raw = read_until_closed(sock)
        assert status_of(raw) == 413, (path, raw[:200])
        assert b"too large" in raw and b"connection: close" in raw.lower()

    # a chunked body with no length: read only up to the bound, then 413 and closed
    sock = socket.create_connection(("127.0.0.1", board.port), timeout=10)
    answer: list[bytes] = []
    reader = threading.Thread(target=lambda: answer.append(read_until_closed(sock)))
    sent = 0
    with sock:
        sock.sendall(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        )
        reader.start()
        chunk = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"
        try:
            for _ in range(64 * 64):  # up to 64 MiB, unless the server stops it
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection: the rest was never read
        reader.join(30)
    assert status_of(answer[0]) == 413, answer[0][:200]
    assert sent < 32 << 20, f"the client could send {sent} bytes"
    # the board is fine afterwards
    nurse = WebClient(board.port)
    assert nurse.login("alice", PASSWORDS["alice"]).status == 303 and nurse.logged_in()
    _attack(
        "request bodies of 4 x 512 MiB and an endless chunked body",
        5,
        f"413 before reading (declared length) or after {MAX_BODY_BYTES} bytes (chunked); "
        f"the connection is closed; the client managed to push {sent >> 20} MiB into "
        "socket buffers",
    )


def test_slow_requests_are_closed_at_the_deadline(mosquitto: Mosquitto, tmp_path: Path) -> None:
    limits = ServeLimits(request_timeout_s=1.0)
    server = BoardServer(mosquitto.url, tmp_path, limits=limits).start()
    try:
        slow = slow_socket(server.port, "127.0.0.1")
        with slow:
            raw = read_until_closed(slow, timeout=20)
        assert status_of(raw) == 408, raw[:200]
        # a body that never ends is cut off the same way
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        with sock:
            sock.sendall(
                b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nusername=al"
            )
            raw = read_until_closed(sock, timeout=20)
        assert status_of(raw) == 408, raw[:200]
        nurse = WebClient(server.port)
        assert nurse.login("alice", PASSWORDS["alice"]).status == 303
    finally:
        server.stop()
    _attack(
        "slowloris: half-sent headers, a body that never ends",
        2,
        "closed at the request deadline (408); the nurse logs in",
    )


@pytest.mark.slow
def test_a_thousand_slow_clients_do_not_keep_a_nurse_out(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """1,050 slow sockets from 35 addresses (half of them with half-sent headers, half with a
    body that never ends) against `roomctl board` limited to 1024 open files (systemd's
    default): the request deadline is set long, so only the connection budget
    (evict the oldest connection still waiting for its request) can let the nurse in."""
    extra = ["--request-timeout", "600"]
    with board_process(mosquitto.url, tmp_path, open_files=1024, extra=extra) as proc:
        addresses = [f"127.0.0.{i}" for i in range(2, 37)]
        slow = [
            slow_socket(proc.port, addresses[i % len(addresses)], body=i % 2 == 1)
            for i in range(1050)
        ]
        try:
            # the board has taken connections up to its budget (and no further)
            budget = connection_budget(ServeLimits(), 1024)
            wait_until(lambda: proc.open_files >= budget, 60, "the board full of slow clients")
            nurse = WebClient(proc.port, "127.0.0.1")
            assert nurse.request("GET", "/login").status == 200
            assert nurse.login("alice", PASSWORDS["alice"]).status == 303
            assert nurse.request("GET", "/").status == 200
            assert proc.open_files <= 1024
            evicted = sum(closed_by_server(s) for s in slow)
            assert 1050 - evicted <= budget  # the rest still open: nobody timed out
            assert evicted >= 1050 - budget
        finally:
            for s in slow:
                s.close()
        # the board is still healthy once they have gone
        assert WebClient(proc.port).login("alice", PASSWORDS["alice"]).status == 303
    _attack(
        "1,050 slow clients (half-sent headers or bodies) from 35 addresses, board at 1024 "
        "open files",
        1050,
        f"connections capped below the open-files limit; {evicted} oldest waiting ones "
        "evicted; the nurse's login and overview answered",
    )


def test_parallel_login_guesses_are_limited_before_the_hash(board: BoardServer) -> None:
    hashed = []
    verify = board.board.users.verify

    def counted(name: str, password: str) -> str | None:
        hashed.append(name)
        return verify(name, password)

    board.board.users.verify = counted  # type: ignore[method-assign]
    attacker = WebClient(board.port, "127.0.0.2")
    with ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(lambda i: attacker.login("alice", f"guess-{i}"), range(40)))
    statuses = sorted(a.status for a in answers)
    assert set(statuses) <= {303, 429}
    assert len(hashed) <= board.board.limiter.per_address, len(hashed)
    assert statuses.count(429) >= 40 - board.board.limiter.per_address
    refused = next(a for a in answers if a.status == 429)
    assert int(refused.headers["retry-after"]) > 0
    _attack(
        "40 parallel password guesses from one address",
        40,
        f"{len(hashed)} hashed, {statuses.count(429)} refused with 429 before the hash",
    )


def test_a_stranger_cannot_lock_a_nurse_out(board: BoardServer) -> None:
    limiter = board.board.limiter
    nurse = WebClient(board.port, "127.0.0.1")  # her workstation
    assert nurse.login("alice", PASSWORDS["alice"]).status == 303
    stranger = WebClient(board.port, "127.0.0.2")
    for i in range(limiter.per_address):
        assert stranger.login("alice", f"wrong-{i}").status == 303  # to /login?error=bad
    assert stranger.login("alice", PASSWORDS["alice"]).status == 429  # his address is done
    assert WebClient(board.port, "127.0.0.1").login("alice", PASSWORDS["alice"]).status == 303
    assert WebClient(board.port, "127.0.0.3").login("alice", PASSWORDS["alice"]).status == 303
    # guesses spread over many addresses reach the per-name bound ...
    guesses = limiter.per_address  # the stranger's first address counted already
    source = 10
    while guesses < limiter.per_name:
        stranger = WebClient(board.port, f"127.0.0.{source}")
        for _ in range(min(limiter.per_address, limiter.per_name - guesses)):
            assert stranger.login("alice", "wrong").status == 303
            guesses += 1
        source += 1
    # ... which stops new addresses, but not her own workstations
    assert WebClient(board.port, "127.0.0.99").login("alice", PASSWORDS["alice"]).status == 429
    assert WebClient(board.port, "127.0.0.1").login("alice", PASSWORDS["alice"]).status == 303
    _attack(
        "a stranger tries to lock a nurse out with wrong passwords",
        guesses,
        f"the stranger's address stopped after {limiter.per_address}; the name after "
        f"{limiter.per_name} for new addresses only; the nurse logged in from her workstation",
    )


def test_logout_needs_the_csrf_token(board: BoardServer) -> None:
    nurse = WebClient(board.port)
    assert nurse.login("alice", PASSWORDS["alice"]).status == 303
    forged = nurse.request(
        "POST",
        "/logout",
        b"",
        {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example"},
    )
    assert forged.status == 403 and "set-cookie" not in forged.headers
    no_token = nurse.request(
        "POST", "/logout", b"", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert no_token.status == 403
    assert nurse.logged_in()  # nothing changed
    form = urllib.parse.urlencode({"csrf": nurse.csrf}).encode()
    done = nurse.request(
        "POST", "/logout", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert done.status == 303 and not nurse.logged_in()
    _attack(
        "a forged logout (no CSRF token, foreign Origin)",
        2,
        "403; the nurse stays logged in; with her token the logout works",
    )


def test_live_streams_end_at_logout_removal_and_disable(board: BoardServer) -> None:
    board.board.users.add_user("bob", "nurse", "bob-password-1")
    board.board.users.add_user("carol", "viewer", "carol-password-1")
    db = str(board.config.board_db)
    alice, bob, carol = (WebClient(board.port, timeout=15) for _ in range(3))
    assert alice.login("alice", PASSWORDS["alice"]).status == 303
    assert bob.login("bob", "bob-password-1").status == 303
    assert carol.login("carol", "carol-password-1").status == 303
    with open_stream(alice) as a, open_stream(bob) as b, open_stream(carol) as c:
        for resp in (a, b, c):
            assert resp.readline().startswith(b"retry:")
        form = urllib.parse.urlencode({"csrf": alice.csrf}).encode()
        assert (
            alice.request(
                "POST", "/logout", form, {"Content-Type": "application/x-www-form-urlencoded"}
            ).status
            == 303
        )
        assert stream_ends(a)  # at logout, at once (the socket timeout is 15 s, pings 15 s)
        assert roomctl(["board", "user", "remove", "bob", "--board-db", db]) == 0
        assert stream_ends(b)  # removed by another process: the watcher ends it
        assert roomctl(["board", "user", "disable", "carol", "--board-db", db]) == 0
        assert stream_ends(c)
    assert not carol.logged_in()
    assert roomctl(["board", "user", "enable", "carol", "--board-db", db]) == 0
    assert carol.login("carol", "carol-password-1").status == 303
    _attack(
        "live streams of a logged-out, removed or disabled user",
        3,
        "each stream ended (logout at once, removal/disable within the 1 s session check)",
    )


@pytest.mark.slow
def test_pdf_renders_queue_and_a_phase_command_stays_fast(
    board: BoardServer, tmp_path: Path
) -> None:
    """44 PDF requests at once while Chromium is held at a gate: two render, four wait, the
    rest get 503 with Retry-After, and a phase command is answered before any render is let go
    (before the queue, 44 renders took every worker thread and the command waited)."""
    script, gate, started = gated_chromium(tmp_path)
    board.board.config.chromium = str(script)
    queue = board.board.renders
    nurse = WebClient(board.port, timeout=120)
    assert nurse.login("alice", PASSWORDS["alice"]).status == 303
    with open(gate, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # every Chromium waits here
        pool = ThreadPoolExecutor(44)
        futures = [pool.submit(nurse.request, "GET", "/rooms/101/report.pdf") for _ in range(44)]
        wait_until(
            lambda: queue.active == queue.slots and queue.waiting == queue.max_waiting,
            60,
            "renders in flight and waiting",
        )
        refused = 44 - queue.slots - queue.max_waiting
        wait_until(lambda: sum(f.done() for f in futures) >= refused, 60, "refusals answered")
        busy = [f.result() for f in futures if f.done()]
        assert len(busy) == refused and queue.refused == refused
        assert all(a.status == 503 and int(a.headers["retry-after"]) > 0 for a in busy)
        assert b"busy" in busy[0].body
        phase = nurse.act("/api/rooms/101/phase", {"phase": "pre_check", "confirm": True})
        assert phase.status == 200  # answered while two Chromiums are held at the gate
        wait_until(lambda: len(list(started.iterdir())) == queue.slots, 30, "two Chromiums")
        fcntl.flock(lock, fcntl.LOCK_UN)
        printed = [f.result(timeout=240) for f in futures]
        pool.shutdown()
    assert len(list(started.iterdir())) == queue.slots + queue.max_waiting  # never more than 2
    pdfs = [a for a in printed if a.status == 200]
    assert len(pdfs) == queue.slots + queue.max_waiting
    assert all(a.body.startswith(b"%PDF") for a in pdfs)
    _attack(
        "44 PDF reports requested at once",
        44,
        f"{queue.slots} rendered at a time, {queue.max_waiting} waited, "
        f"{44 - queue.slots - queue.max_waiting} got 503 with Retry-After; a phase command "
        "was answered while the renders were held",
    )


def test_one_address_cannot_take_every_connection(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Per address: a new connection takes the place of that address's oldest waiting one;
    open live streams are never dropped, and when only they are left the new one gets 503
    with Retry-After. Streams outlive the request deadline (their request arrived)."""
    limits = ServeLimits(request_timeout_s=1.0, max_per_address=4)
    server = BoardServer(mosquitto.url, tmp_path, limits=limits).start()
    opened: list[socket.socket] = []
    try:
        nurse = WebClient(server.port, "127.0.0.5", timeout=15)
        assert nurse.login("alice", PASSWORDS["alice"]).status == 303
        cookie = f"roomctl_session={nurse.cookies['roomctl_session']}"
        slow = [slow_socket(server.port, "127.0.0.5") for _ in range(4)]
        streams: list[socket.socket] = []
        opened.extend(slow)
        assert nurse.logged_in()  # took the place of the oldest slow one
        wait_until(lambda: closed_by_server(slow[0]), 10, "the oldest slow socket dropped")
        for _ in range(4):
            sock = socket.socket()
            opened.append(sock)
            sock.bind(("127.0.0.5", 0))
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(
                f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode()
            )
            sock.settimeout(10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            streams.append(sock)
        assert all(closed_by_server(s) for s in slow)  # every slow one made way
        refused = nurse.request("GET", "/api/whoami")
        assert refused.status == 503 and int(refused.headers["retry-after"]) > 0
        # another address is not affected
        assert WebClient(server.port, "127.0.0.6").request("GET", "/login").status == 200
        # after a request deadline has passed (a new slow socket got its 408) ...
        late = slow_socket(server.port, "127.0.0.6")
        with late:
            assert status_of(read_until_closed(late)) == 408
        assert not any(closed_by_server(s) for s in streams)  # ... the streams are still open
    finally:
        for s in opened:
            s.close()
        server.stop()
    _attack(
        "one address opens slow connections, then live streams, up to its bound",
        9,
        "its oldest waiting connection made way for the nurse; live streams were never "
        "dropped (503 with Retry-After when only streams were left); other addresses unaffected",
    )
