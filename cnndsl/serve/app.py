"""The page's HTTP side, on Starlette: the page and its vendored assets, the file, and the analysis.

It serves nothing but these: the one file (read and saved), the analysis of texts sent to it, and
the static folder of this package. Every request must carry the session's token (guard.py: another
local user cannot), name this server in its Host header (a DNS rebinding attack names the attacker's
domain), and, from a page, come from this origin (another site's page cannot read or write the file
through the user's browser).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..core.errors import CnnDslError, ValueProblem
from ..front.load import MAX_FILE_BYTES
from ..ops import known_names
from .analysis import Request as AnalysisRequest
from .document import Document
from .guard import TokenRequired, bounded_body
from .worker import AnalysisWorker

STATIC = Path(__file__).parent / "static"
READ_METHODS = ("GET", "HEAD")


class SameOriginOnly:
    """ASGI middleware: 403 unless Host is one of ours and Origin, when sent, is ours too; writes
    (anything but GET and HEAD) must carry our Origin, as browsers send it with every fetch that writes."""

    def __init__(self, app, hosts: Iterable[str]):
        self.app = app
        self.hosts = set(hosts)
        self.origins = {f"http://{host}" for host in self.hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
            origin = headers.get("origin")
            refused = (
                headers.get("host") not in self.hosts
                or (origin is not None and origin not in self.origins)
                or (scope.get("method", "GET") not in READ_METHODS and origin is None)
            )
            if refused and scope["type"] == "websocket":  # closed before it is accepted: the client sees 403
                await send({"type": "websocket.close", "code": 1008})
                return
            if refused:
                await PlainTextResponse("refused: this server answers only its own page", 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    document: Document,
    analyser: AnalysisWorker,
    hosts: Iterable[str],
    token: str,
    cookie: str,
    depth: int | None = None,
):
    """The application for one file, answering only to the given `host:port` names and to requests with the
    session's `token` (or the `cookie` that holds it); `depth` starts the diagram."""

    async def page(request: Request) -> Response:
        config = {"file": document.path.name, "layers": known_names(), "depth": depth}
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{config}}", json.dumps(config).replace("<", "\\u003c"))
        return HTMLResponse(html, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})

    async def read_file(request: Request) -> Response:
        try:
            text, version = await run_in_threadpool(document.read)
        except CnnDslError as error:
            return JSONResponse({"error": str(error)}, 500)
        return JSONResponse({"text": text, "version": version, "path": str(document.path)})

    async def version(request: Request) -> Response:
        return JSONResponse({"version": await run_in_threadpool(document.version)})

    async def save_file(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse({"error": 'expected {"text": ...}'}, 400)
        try:
            return JSONResponse({"version": await run_in_threadpool(document.save, body["text"])})
        except CnnDslError as error:
            return JSONResponse({"error": str(error)}, 500)

    async def analyse(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return JSONResponse({"error": 'expected {"text": ...}'}, 400)
        try:
            asked = AnalysisRequest.from_json(body)
        except ValueProblem as error:
            return JSONResponse({"error": error.message}, 400)
        return JSONResponse(await run_in_threadpool(analyser.analyse, asked))

    async def layer(request: Request) -> Response:
        try:
            network_id = int(request.query_params.get("id", ""))
        except ValueError:
            return JSONResponse({"error": "expected ?id=N&name=LAYER"}, 400)
        found = await run_in_threadpool(analyser.explain, network_id, request.query_params.get("name", ""))
        return JSONResponse(found) if found else JSONResponse({"error": "no such layer"}, 404)

    async def refused(request: Request, error: HTTPException) -> Response:
        return JSONResponse({"error": error.detail}, error.status_code)

    app = Starlette(
        exception_handlers={HTTPException: refused},
        routes=[
            Route("/", page),
            Route("/api/file", read_file, methods=["GET"]),
            Route("/api/file", save_file, methods=["PUT"]),
            Route("/api/version", version),
            Route("/api/analyse", analyse, methods=["POST"]),
            Route("/api/layer", layer),
            Mount("/static", StaticFiles(directory=STATIC)),
        ],
    )
    return SameOriginOnly(TokenRequired(app, token, cookie), hosts)


async def _json_body(request: Request):
    """The request's JSON, or None when it is not JSON; 413 when it is too large (guard.bounded_body)."""
    data = await bounded_body(request, 2 * MAX_FILE_BYTES)
    try:
        return json.loads(data)
    except ValueError:
        return None
