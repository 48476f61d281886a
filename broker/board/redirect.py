"""The board's plain-HTTP port in production: it only redirects to the HTTPS board.

How this works: `HttpsRedirect` is a tiny ASGI app served by its own uvicorn server (a
thread beside the board's, see `cli.py`). Every request, whatever its method or path, gets
308 Permanent Redirect to the same path and query on `https://<Host name>:<https port>`:
no board page, no API, no cookie is ever answered over plain HTTP. 308 (not 301) keeps the
method, so a form posted to the old address is not silently turned into a GET. A request
without a usable `Host` gets 400.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send


def https_location(request: Request, https_port: int) -> str | None:
    """The HTTPS address of this request (None when the request names no host)."""
    if not request.headers.get("host"):
        return None
    host = request.url.hostname
    if not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if https_port != 443:
        netloc += f":{https_port}"
    return str(request.url.replace(scheme="https", netloc=netloc))


class HttpsRedirect:
    """ASGI app: 308 to the HTTPS board for every HTTP request."""

    def __init__(self, https_port: int):
        self.https_port = https_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off for this server; nothing else is spoken here
        request = Request(scope, receive)
        location = https_location(request, self.https_port)
        response: Response
        if location is None:
            response = PlainTextResponse("a Host header is needed\n", status_code=400)
        else:
            response = RedirectResponse(location, status_code=308)
        await response(scope, receive, send)
