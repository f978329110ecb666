"""Whom the server answers, and how much it reads: the session's secret, and a bound on request bodies.

The Host and Origin checks (app.py) stop other sites' pages in the user's browser; they do not stop another
user of the machine, whose own client sends whatever headers it likes. As Jupyter does, each session has a
secret that only the person who started it sees (in the URL `cnndsl serve` prints): the page's first request
carries it as `?token=`, which sets an HttpOnly, SameSite=Strict cookie and redirects to the clean URL; every
request then needs the cookie (or the token), compared in constant time, or gets 403.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse

REFUSED = "refused: this server answers only with its session's token (in the URL that `cnndsl serve` printed)"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_name(port: int) -> str:
    """Cookies are not kept per port: the port in the name keeps two sessions' cookies apart."""
    return f"cnndsl-serve-{port}"


class TokenRequired:
    """ASGI middleware: 403 for any HTTP request or websocket without the session's token or its cookie."""

    def __init__(self, app, token: str, cookie: str):
        self.app = app
        self.token = token.encode("ascii")
        self.cookie = cookie

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        given = connection.query_params.get("token")
        if given is not None and self._matches(given):
            if scope["type"] == "http" and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
                await self._remember(scope, receive, send)
                return
        elif not self._matches(connection.cookies.get(self.cookie, "")):
            if scope["type"] == "websocket":  # closed before it is accepted: the client sees 403
                await send({"type": "websocket.close", "code": 1008})
            else:
                await PlainTextResponse(REFUSED, 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.token)

    async def _remember(self, scope, receive, send) -> None:
        """The cookie, and the page's URL without the token (out of the history and of any Referer)."""
        response = RedirectResponse("/", 303, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
        response.set_cookie(self.cookie, self.token.decode("ascii"), httponly=True, samesite="strict", path="/")
        await response(scope, receive, send)


async def bounded_body(request: Request, limit: int) -> bytes:
    """The body, read as it streams and refused (413) as soon as it passes `limit` bytes, whether or not it
    declared its length: a chunked body declares none."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"the request is larger than {limit:,} bytes")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(413, f"the request is larger than {limit:,} bytes")
    return bytes(data)
