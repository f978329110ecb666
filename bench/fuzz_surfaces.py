"""bench/fuzz.py's inputs beyond a .cnn file: a docs block, and a request to `cnndsl serve`'s application.

A docs block is a Markdown page with one ```cnn fence, rendered by Python-Markdown with cnndsl.markdown:
its text is the fuzz program, or `file=` names one of DOCS_TARGETS (files outside the docs folder, a
link leading out, a FIFO, a .env inside, a library name). A request goes to the application `cnndsl
serve` runs, in process through ASGI: any method and path, with or without the session's token, from
our Host and Origin or another, its body the fuzz program as JSON, garbage, or too large, whole or in
chunks. An escape is what the threat model (docs/errors.md) rules out: SECRET on a page or in an
answer, an answer but 403 without the token or from another origin, the served file changed by such a
request, a body past the bound not refused with 413, any 5xx, or an exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

SECRET = "fuzz-secret-7f3a9c"  # in every file a page or a request must not show
DOCS_TARGETS = [
    "helper.cnn",
    "/helper.cnn",
    "../outside/secret.cnn",
    "../outside/secret.env",
    "secret.env",
    "link-out.cnn",
    "pipe.cnn",
    "folder.cnn",
    "/etc/passwd",
    "/../outside/secret.cnn",
    "lenet5",
    "secret",
    "no-such.cnn",
]
PATHS = [
    "/",
    "/api/file",
    "/api/version",
    "/api/analyse",
    "/api/layer?id=1&name=conv",
    "/static/app.js",
    "/static/../app.py",
    "/static/%2e%2e/app.py",
    "/api/file/../../outside/secret.cnn",
    "/static//etc/passwd",
]
METHODS = ["GET", "GET", "POST", "POST", "PUT", "HEAD", "DELETE", "OPTIONS"]
TOKEN = "fuzz-token-" + "x" * 32
COOKIE = "cnndsl-serve-8765"
BODY_BOUND = 8 * 1024 * 1024


def make_surface_files(root: Path) -> tuple[Path, Path]:
    """root/docs (the docs folder) beside root/outside (secrets); root/served/net.cnn (the served file)."""
    docs, outside, served = root / "docs", root / "outside", root / "served"
    for folder in (docs, outside, served):
        folder.mkdir()
    (outside / "secret.cnn").write_text(f"network leaked {{ input 3x8x8\n    {SECRET}\n}}\n")
    (outside / "secret.env").write_text(f"API_KEY={SECRET}\n")
    (docs / "secret.env").write_text(f"API_KEY={SECRET}\n")
    (docs / "helper.cnn").write_text("network helper { input 3x8x8, conv3x3(4), relu }\n")
    (docs / "link-out.cnn").symlink_to(outside / "secret.cnn")
    (docs / "folder.cnn").mkdir()
    os.mkfifo(docs / "pipe.cnn")
    (served / "net.cnn").write_text("network net { input 3x8x8, relu }\n")
    logging.getLogger("cnndsl.markdown").disabled = True  # a warning per broken block: not the fuzz's output
    return docs, served / "net.cnn"


def docs_page(choices, text: str) -> str:
    """A page with one ```cnn block: the program inline, or a target from DOCS_TARGETS, with some options."""
    options = [choices.pick(["", "depth=0", "depth=1", "depth=x", "summary", "shapes=true cost=no", "source"])]
    body = text
    if choices.chance(40):
        options.append(f'file="{choices.pick(DOCS_TARGETS)}"')
        body = "" if choices.chance(80) else text
    return f"# A page\n\n```cnn {{{' '.join(options)}}}\n{body}\n```\n"


def run_docs(page: str, docs: Path) -> tuple[str | None, str]:
    import markdown

    from cnndsl.markdown import CnnDslExtension

    html = markdown.markdown(page, extensions=[CnnDslExtension(base_path=str(docs), layout_timeout=2)])
    if SECRET in html or "root:" in html:
        return "a docs page shows a file it was not pointed at", "escape"
    return None, "docs-drawn" if "<svg" in html else "docs-refused"


class ServeClient:
    """`cnndsl serve`'s application for one file, called in process; `request` checks one answer."""

    def __init__(self, file: Path):
        from cnndsl.serve.app import create_app
        from cnndsl.serve.document import Document
        from cnndsl.serve.worker import AnalysisWorker

        self.file = file
        self.worker = AnalysisWorker(file, None, None)
        self.app = create_app(Document(file), self.worker, {"127.0.0.1:8765"}, TOKEN, COOKIE)
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.worker.close()
        self.loop.close()

    def request(self, choices, text: str) -> tuple[str | None, str]:
        method, path = choices.pick(METHODS), choices.pick(PATHS)
        token = choices.pick(["cookie", "cookie", "query", "none", "wrong cookie", "wrong query"])
        host = choices.pick(["127.0.0.1:8765"] * 4 + ["attacker.example:8765"])
        origin = choices.pick(["http://127.0.0.1:8765"] * 4 + ["null", None, "http://evil.example"])
        headers = [("host", host)] + ([("origin", origin)] if origin else [])
        if token.endswith("cookie"):
            headers.append(("cookie", f"{COOKIE}={TOKEN if token == 'cookie' else TOKEN[:-1]}"))
        if token.endswith("query"):
            path += ("&" if "?" in path else "?") + f"token={TOKEN if token == 'query' else 'guess'}"
        body = self._body(choices, text)
        chunked = choices.chance(50)
        if not chunked:
            headers.append(("content-length", str(len(body))))
        before = self.file.read_bytes()
        status, answer = self.loop.run_until_complete(self._call(method, path, headers, body, chunked))
        trusted = token in ("cookie", "query") and host.startswith("127.") and origin in ("http://127.0.0.1:8765", None)
        written = self.file.read_bytes() != before
        if status >= 500:
            return f"{method} {path}: {status} {answer[:200]!r}", "escape"
        if SECRET.encode() in answer or b"root:" in answer:
            return f"{method} {path}: the answer shows a file outside", "escape"
        if not trusted and (status != 403 or written):
            return f"{method} {path} ({token}, {host}, {origin}): {status}, file written: {written}", "escape"
        if trusted and len(body) > BODY_BOUND and method in ("POST", "PUT") and status not in (403, 404, 405, 413):
            return f"{method} {path}: a {len(body):,}-byte body answered {status}", "escape"
        return None, f"serve-{status}"

    @staticmethod
    def _body(choices, text: str) -> bytes:
        kind = choices.pick(["json", "json", "garbage", "large", "empty"])
        if kind == "json":
            return json.dumps({"text": text, "depth": choices.pick([None, 0, 1, -1, "x"])}).encode()
        if kind == "garbage":
            return text.encode("utf-8", "surrogatepass")
        if kind == "large":
            return b'{"text": "' + b" " * (BODY_BOUND + 1) + b'"}'
        return b""

    async def _call(self, method: str, path: str, headers: list, body: bytes, chunked: bool) -> tuple[int, bytes]:
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "headers": [(name.encode(), value.encode("latin-1")) for name, value in headers],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8765),
        }
        pieces = [body[start : start + (1 << 20)] for start in range(0, len(body), 1 << 20)] if chunked else [body]
        pieces = pieces or [b""]
        messages = [
            {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)
        ]
        sent: list[dict] = []

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await self.app(scope, receive, send)
        status = next(message["status"] for message in sent if message["type"] == "http.response.start")
        return status, b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
