"""The board over HTTPS, as production serves it: `roomctl board --tls-cert/--tls-key` with a
certificate from the clinic CA (`roomctl pki issue-web`), a plain-HTTP port that only
redirects, `Secure` cookies and HSTS; plain HTTP refused off loopback without the flag.

A real `roomctl board` process on 127.0.0.1 with a real Mosquitto; the client trusts the
test clinic CA only (no certificate check is switched off).
"""

from __future__ import annotations

import http.client
import http.cookiejar
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.board.users import BoardDB
from broker.mosquitto.pki import Pki
from broker.mosquitto.run import Mosquitto, free_port, wait_port
from controller.cli import main as roomctl
from tests.support.board import PASSWORDS, SITE

pytestmark = pytest.mark.broker


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class HttpsBoard:
    https: str
    http_port: int
    ca: Path


@pytest.fixture
def https_board(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[HttpsBoard]:
    pki_dir = tmp_path / "pki"
    assert roomctl(["pki", "init", str(pki_dir), "--site", SITE]) == 0
    assert roomctl(["pki", "issue-web", str(pki_dir), "--hostname", "board.test"]) == 0
    cert, key = Pki(pki_dir).web_paths()
    users = BoardDB(tmp_path / "board.sqlite")
    users.add_user("alice", "nurse", PASSWORDS["alice"])
    users.close()
    port, http_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "board", "--broker", mosquitto.url,
         "--site", SITE, "--board-db", str(tmp_path / "board.sqlite"), "--port", str(port),
         "--tls-cert", str(cert), "--tls-key", str(key), "--redirect-port", str(http_port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, 20)
        wait_port("127.0.0.1", http_port, 20)
        yield HttpsBoard(f"https://127.0.0.1:{port}", http_port, pki_dir / "ca.crt")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) in (0, -signal.SIGTERM)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stderr.close()
        assert "Traceback" not in err, err


def _opener(ca: Path | None, jar: http.cookiejar.CookieJar) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [urllib.request.HTTPCookieProcessor(jar), NoRedirect()]
    if ca is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca)))
    return urllib.request.build_opener(*handlers)


def _get(
    opener: urllib.request.OpenerDirector, url: str, data: bytes | None = None, method: str = ""
) -> tuple[int, http.client.HTTPMessage, bytes]:
    req = urllib.request.Request(url, data=data, method=method or None)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _cookie(headers: http.client.HTTPMessage, name: str) -> list[str]:
    (line,) = [c for c in headers.get_all("set-cookie") or [] if c.startswith(name + "=")]
    return [part.strip().lower() for part in line.split(";")]


def test_login_over_https_sets_secure_cookies_and_hsts(https_board: HttpsBoard) -> None:
    jar = http.cookiejar.CookieJar()
    client = _opener(https_board.ca, jar)
    status, headers, body = _get(client, https_board.https + "/login")
    assert status == 200
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert {"secure", "httponly", "samesite=strict"} <= set(_cookie(headers, "roomctl_login"))
    match = re.search(rb'name="login_csrf" value="([^"]+)"', body)
    assert match
    form = {"username": "alice", "password": PASSWORDS["alice"], "login_csrf": match[1].decode()}
    status, headers, _ = _get(
        client, https_board.https + "/login", urllib.parse.urlencode(form).encode()
    )
    assert status == 303 and headers["location"] == "/", headers
    assert headers["strict-transport-security"] == "max-age=31536000"
    session = _cookie(headers, "roomctl_session")
    assert {"secure", "httponly", "samesite=strict"} <= set(session), session
    status, headers, body = _get(client, https_board.https + "/api/whoami")
    assert status == 200 and b"alice" in body, body
    assert headers["strict-transport-security"] == "max-age=31536000"
    # a client that does not trust the clinic CA is refused at the handshake
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(https_board.https + "/healthz", timeout=10)


def test_plain_http_port_only_redirects_to_https(https_board: HttpsBoard) -> None:
    plain = _opener(None, http.cookiejar.CookieJar())
    base = f"http://127.0.0.1:{https_board.http_port}"
    locations: dict[str, str] = {}
    for path, data in (("/", None), ("/login", None), ("/api/rooms", None), ("/healthz", None),
                       ("/calls?day=2026-01-01", None), ("/login", b"username=alice"),
                       ("/api/rooms/101/claim", b"{}")):  # fmt: skip
        status, headers, body = _get(plain, base + path, data)
        assert status == 308, (path, status, body[:200])
        assert headers["location"] == https_board.https + path, headers
        locations[path] = headers["location"]
        assert headers.get_all("set-cookie") is None
        assert b"<html" not in body.lower() and b"alice" not in body
    # the Host the browser used is kept (a name in the board certificate's SAN)
    conn = http.client.HTTPConnection("127.0.0.1", https_board.http_port, timeout=10)
    conn.request("GET", "/rooms/101", headers={"Host": f"board.test:{https_board.http_port}"})
    resp = conn.getresponse()
    port = https_board.https.rsplit(":", 1)[1]
    assert (
        resp.status == 308 and resp.getheader("location") == f"https://board.test:{port}/rooms/101"
    )
    conn.close()
    # and the redirect target is the board, over HTTPS
    status, _, body = _get(_opener(https_board.ca, http.cookiejar.CookieJar()), locations["/login"])
    assert status == 200 and b'name="login_csrf"' in body


def test_plain_http_off_loopback_is_refused_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["board", "--broker", "mqtt://127.0.0.1:1", "--site", SITE,
            "--board-db", str(tmp_path / "board.sqlite")]  # fmt: skip
    assert roomctl([*argv, "--bind", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "plain HTTP on 0.0.0.0 is refused" in err and "--insecure-http" in err, err
    assert "--tls-cert" in err
    assert roomctl([*argv, "--redirect-port", "8080"]) == 2
    assert "--redirect-port redirects to HTTPS" in capsys.readouterr().err
    assert roomctl([*argv, "--bind", "0.0.0.0", "--tls-cert", "x.crt"]) == 2
    assert "give both --tls-cert and --tls-key" in capsys.readouterr().err
    assert not (tmp_path / "board.sqlite").exists()  # refused before anything was opened
