"""`cnndsl serve` as a user meets it: a real server process, and its page in headless Chromium driven by
Playwright (Debian's `chromium`; scripts/test installs it, and these tests skip, saying so, without it).

Expected figures are counted by hand or taken from torchvision: AlexNet has 61,100,840 parameters
(torchvision's published count); with 10 classes its last fc has 4096·10 + 10 instead of
4096·1000 + 1000, 4,056,030 fewer: 57,044,810. On a 3×227×227 input its first convolution gives
⌊(227 − 11 + 2·2)/4⌋ + 1 = 56, with 64·3·11·11 + 64 = 23,296 parameters.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnndsl.graph import ir

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` is not installed")


@dataclass
class Served:
    url: str  # the page's clean URL
    host: str
    port: int
    file: Path
    token: str
    process: subprocess.Popen

    @property
    def entry(self) -> str:
        """The URL as `cnndsl serve` prints it, with the session's token."""
        return f"{self.url}?token={self.token}"

    @property
    def cookie(self) -> dict:
        return {"Cookie": f"cnndsl-serve-{self.port}={self.token}"}


# Analyses made slow on purpose, in every process of a test server (the server, and the worker processes its
# forkserver starts): a text with SLEEP never ends; one with HOG takes 64 MiB more every 0.05 s, up to 1.5 GiB;
# one with FAIL meets a bug (an exception that is no CnnDslError).
SLEEP, HOG, FAIL = "# slow on purpose: sleeps", "# slow on purpose: hogs memory", "# fails on purpose"
SLOW_ANALYSES = f"""\
import time

from cnndsl.serve import analysis

_load = analysis.Analyser.load


def _slow_load(self, text):
    if {FAIL!r} in text:
        raise RuntimeError("on purpose")
    if {SLEEP!r} in text:
        time.sleep(3600)
    if {HOG!r} in text:
        hog = []
        while len(hog) < 24:
            hog.append(b"x" * (64 << 20))
            time.sleep(0.05)
        time.sleep(3600)
    return _load(self, text)


analysis.Analyser.load = _slow_load
"""


def _start_server(file: Path, hooks: Path, *options: str) -> Served:
    """`cnndsl serve FILE OPTIONS --port 0` as a separate process, with SLOW_ANALYSES as hooks/sitecustomize.py."""
    (hooks / "sitecustomize.py").write_text(SLOW_ANALYSES, encoding="utf-8")
    path = os.pathsep.join([str(ROOT), str(hooks), os.environ.get("PYTHONPATH", "")])
    command = [sys.executable, "-c", "from cnndsl.cli import main; main()", "serve", str(file), *options, "--port", "0"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": path}
    )
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    found = re.search(r"(http://(127\.0\.0\.1):(\d+)/)\?token=([\w-]+)  \(Ctrl-C stops\)$", line)
    if not found:
        process.kill()
        pytest.fail(f"no URL printed: {line!r} {process.stderr.read() if process.poll() is not None else ''}")
    return Served(found.group(1), found.group(2), int(found.group(3)), file, found.group(4), process)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`cnndsl serve alexnet.cnn -n alexnet --input 3x227x227 --port 0`, as a separate process."""
    folder = tmp_path_factory.mktemp("served")
    file = folder / "alexnet.cnn"
    shutil.copy(ROOT / "library" / "alexnet.cnn", file)
    server = _start_server(file, tmp_path_factory.mktemp("hooks"), "-n", "alexnet", "--input", "3x227x227")
    yield server
    server.process.terminate()
    server.process.communicate(timeout=10)  # waits, and closes its pipes


def _request(
    served: Served, method: str, path: str, headers: dict, body: bytes = b"", timeout: float = 10
) -> tuple[int, bytes]:
    """One raw request with exactly these headers (Host included), as a browser or an attacker sends it."""
    connection = http.client.HTTPConnection(served.host, served.port, timeout=timeout)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        connection.putheader(name, value)
    try:
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _own(served: Served) -> dict:
    """The headers of the page's own requests: its Host, its Origin, the session's cookie."""
    return {"Host": f"127.0.0.1:{served.port}", "Origin": f"http://127.0.0.1:{served.port}", **served.cookie}


# ---- the learner's view: each layer's figures worked out, checked against hand calculations -------------
def _worked(text: str, **options) -> dict[str, dict]:
    import cnndsl
    from cnndsl.serve.explain import explain

    network = cnndsl.parse(text, **options)
    return {
        ir.layer(network.graph, node).name: dict(explain(network.graph, node)["rows"]) for node in network.graph.nodes
    }


def test_alexnets_first_layer_is_worked_out_as_lecture_notes_do():
    rows = _worked(
        (ROOT / "library" / "alexnet.cnn").read_text(encoding="utf-8"), network="alexnet", input=(3, 227, 227)
    )["features.conv1"]
    assert rows == {
        "output size": "H = W: ⌊(227 − 11 + 2·2)/4⌋ + 1 = 56  → 64×56×56",
        "parameters": "64·3·11·11 + 64 = 23,296",
        "MACs": "64·56·56·11·11·3 = 72,855,552",
        "receptive field": "H = W: 1 + (11 − 1)·1·1 = 11, jump 1·4 = 4",
    }


def test_dilation_ceil_mode_transposed_convolution_norm_and_fc_are_worked_out():
    rows = _worked(
        "network t { input 3x32x32, conv(8, k=3, d=2, p=2), maxpool(k=3, s=2, ceil=true), "
        "deconv(4, k=2, s=2), bn, fc(10) }"
    )
    assert rows["conv"]["output size"] == "H = W: ⌊(32 + 2·2 − 2·(3 − 1) − 1)/1⌋ + 1 = 32  → 8×32×32"
    assert rows["conv"]["receptive field"] == "H = W: 1 + (3 − 1)·2·1 = 5, jump 1·1 = 1"
    assert rows["maxpool"]["output size"] == "H = W: ⌈(32 − 3 + 2·0)/2⌉ + 1 = 16  → 8×16×16"
    assert rows["maxpool"]["receptive field"] == "H = W: 5 + (3 − 1)·1·1 = 7, jump 1·2 = 2"
    assert rows["deconv"]["output size"] == "H = W: (16 − 1)·2 − 2·0 + 2 = 32  → 4×32×32"
    assert rows["deconv"]["parameters"] == "8·4·2·2 + 4 = 132"
    assert rows["deconv"]["MACs"] == "8·16·16·2·2·4 = 32,768"
    # a 2×2 transposed convolution at stride 2: each output pixel reads exactly one input pixel
    assert rows["deconv"]["receptive field"] == "H = W: 7 + (⌈2/2⌉ − 1)·2 = 7, jump 2/2 = 1"
    assert rows["bn"]["parameters"] == "2·4 = 8"
    assert rows["fc"]["parameters"] == "4·32·32·10 + 10 = 40,970"
    assert rows["fc"]["MACs"] == "4·32·32·10 = 40,960"


def test_a_grouped_convolution_and_a_layer_without_a_window():
    rows = _worked("network t { input 32x56x56, conv3x3(64, s=2, g=4, bias=false), relu }")
    assert rows["conv"]["parameters"] == "64·(32/4)·3·3 = 4,608"
    assert rows["conv"]["MACs"] == "64·28·28·3·3·8 = 3,612,672"
    assert rows["conv"]["output size"] == "H = W: ⌊(56 − 3 + 2·1)/2⌋ + 1 = 28  → 64×28×28"
    assert rows["relu"] == {
        "output size": "64×28×28, the shape it receives",
        "parameters": "no parameters",
        "MACs": "none counted: only convolutions and fully connected layers multiply-accumulate",
        "receptive field": "3, as it receives (no window); jump 2",
    }


def test_one_dot_process_lays_out_diagram_after_diagram_as_graphviz_does():
    """The same SVG as a fresh `dot` for each graph; only sibling clusters may come in another order."""
    import cnndsl
    from cnndsl.backends.graphviz import to_digraph
    from cnndsl.serve.layout import DotProcess

    def lines(svg: str) -> list[str]:
        return sorted(svg.splitlines())

    layout = DotProcess()
    graphs = [to_digraph(cnndsl.load(name), depth=depth) for name, depth in (("lenet5", None), ("resnet18", 1))]
    expected = [graph.pipe(format="svg").decode("utf-8") for graph in graphs]
    started = None
    for graph, svg in [*zip(graphs, expected), *zip(graphs, expected)]:
        assert lines(layout.svg(graph.source)) == lines(svg)
        started = started or layout.process.pid
        assert layout.process.pid == started
    layout.process.kill()
    layout.process.wait()
    assert lines(layout.svg(graphs[0].source)) == lines(expected[0])  # a dead dot is started again
    assert layout.process.pid != started
    layout.close()


@pytest.fixture
def analyser_for(tmp_path):
    """Analysers of tmp_path/net.cnn (for the network named, or None), closed after the test."""
    from cnndsl.serve.analysis import Analyser

    made = []
    yield lambda network: made.append(Analyser(tmp_path / "net.cnn", network, None)) or made[-1]
    for analyser in made:
        analyser.close()


def test_a_diagram_too_large_to_redraw_as_you_type_is_a_note_and_the_table_still_comes(analyser_for):
    from cnndsl.backends.diagram_options import DiagramOptions
    from cnndsl.serve.analysis import Request

    analyser = analyser_for(None)
    large = analyser.analyse(Request("network n { input 3x8x8\n relu x 2000 }"))
    assert large["ok"] and large["svg"].startswith('<p class="too-large">This diagram has 4,')
    assert large["table"].count("<tr data-layer=") == 2000
    collapsed = analyser.analyse(Request("network n { input 3x8x8\n relu x 2000 }", DiagramOptions(depth=0)))
    assert collapsed["svg"].startswith("<svg")


def test_an_edit_that_leaves_the_diagram_the_same_is_not_laid_out_again(analyser_for):
    from cnndsl.serve.analysis import Request

    analyser = analyser_for("a")
    laid_out = []
    layout = analyser.layout.svg
    analyser.layout.svg = lambda source: laid_out.append(source) or layout(source)
    text = "network a { input 3x8x8, conv3x3(4), relu }\nnetwork b { input 3x8x8, relu }\n"
    first = analyser.analyse(Request(text))
    for edited in (text + "# a comment\n", text.replace("network b { input 3x8x8", "network b { input 3x9x9")):
        assert analyser.analyse(Request(edited))["svg"] == first["svg"]
    assert len(laid_out) == 1
    assert analyser.analyse(Request(text.replace("conv3x3(4)", "conv3x3(5)")))["svg"] != first["svg"]
    assert len(laid_out) == 2


def test_a_text_seen_again_reuses_its_analysis_unless_it_imports_a_file(analyser_for, tmp_path):
    """A toggle of the diagram's depth does not analyse the text again; an imported file may have changed on disk,
    so a text that imports one is analysed again. conv3x3(4) on 3 channels: 4·3·3·3 + 4 = 112 parameters."""
    from cnndsl.backends.diagram_options import DiagramOptions
    from cnndsl.serve.analysis import Request

    analyser = analyser_for(None)
    loaded = []
    load = analyser.load
    analyser.load = lambda text: loaded.append(text) or load(text)
    text = "network n { input 3x8x8, conv3x3(4), relu }"
    first, folded = analyser.analyse(Request(text)), analyser.analyse(Request(text, DiagramOptions(depth=0)))
    assert (first["params"], folded["params"], folded["id"], len(loaded)) == (112, 112, first["id"], 1)
    assert folded["svg"] != first["svg"] and folded["table"] == first["table"]
    (tmp_path / "blocks.cnn").write_text("block b { conv3x3(4) }\n", encoding="utf-8")
    importing = 'import "blocks.cnn"\nnetwork n { input 3x8x8, b, relu }'
    assert analyser.analyse(Request(importing))["params"] == 112
    (tmp_path / "blocks.cnn").write_text("block b { conv3x3(8) }\n", encoding="utf-8")
    assert analyser.analyse(Request(importing))["params"] == 8 * 3 * 3 * 3 + 8
    assert len(loaded) == 3


def _parse_or_error(parse, text: str):
    from cnndsl.core.errors import CnnDslError

    try:
        return parse(text)
    except CnnDslError as error:
        return error.message, str(error.pos), error.hint


def test_a_text_parsed_a_definition_at_a_time_has_the_whole_texts_tree_or_error(monkeypatch):
    """parse_text on the whole text is the oracle: the same tree (positions included) or the same error."""
    from cnndsl.front.cache import parse_text
    from cnndsl.serve import parsing

    pieces = parsing.PieceParser("net.cnn")
    for file in sorted((ROOT / "library").glob("*.cnn")):
        text = file.read_text(encoding="utf-8")
        assert pieces.parse(text) == parse_text(text, "net.cnn"), file.name
    parsed = []
    monkeypatch.setattr(parsing, "parse_text", lambda text, file: parsed.append(text) or parse_text(text, file))
    text = (ROOT / "library" / "resnet.cnn").read_text(encoding="utf-8")
    pieces.parse(text)
    parsed.clear()
    edited = text.replace("classes=1000", "classes=10")
    assert pieces.parse(edited) == parse_text(edited, "net.cnn")
    assert len(parsed) == 1 and parsed[0].lstrip("\n").startswith("network resnet(")  # only the edited definition
    shifted = "# a new first line\n" + edited  # every definition moves down a line: all parsed again, placed right
    assert pieces.parse(shifted) == parse_text(shifted, "net.cnn")
    cases = [
        "network a { input 3x8x8\nlet k = 3\nconv(4, k=k) }\n",  # `let` at the first column inside a body: one piece
        "block b(c) { conv3x3(c) }\nnetwork a { input 3x8x8, b(4), relu ) }\n",  # an error in the second definition
        "network a { input 3x8x8, relu }\nnetwork b { input 3x8x8, relu\nnetwork c { input 3x8x8 }\n",  # unclosed
    ]
    for case in cases:
        assert _parse_or_error(pieces.parse, case) == _parse_or_error(lambda text: parse_text(text, "net.cnn"), case)
    assert _parse_or_error(pieces.parse, cases[1])[:2] == ("unexpected `)`", "net.cnn:2:37")


# ---- the server: where it listens and whom it answers ---------------------------------------------------
def test_it_listens_on_the_loopback_address_only(served):
    listening = []
    for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = row.split()[1], row.split()[3]
        address, port = local.split(":")
        if state == "0A" and int(port, 16) == served.port:  # 0A: LISTEN
            listening.append(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    assert listening == ["127.0.0.1"]


def test_the_page_and_the_file_are_served_to_their_own_host(served):
    status, body = _request(served, "GET", "/api/file", {"Host": f"localhost:{served.port}", **served.cookie})
    assert status == 200 and json.loads(body)["text"] == served.file.read_text(encoding="utf-8")


def test_a_request_naming_another_host_is_refused_as_dns_rebinding(served):
    for path in ("/", "/api/file", "/static/app.js"):
        status, body = _request(served, "GET", path, {"Host": f"attacker.example:{served.port}", **served.cookie})
        assert (status, body) == (403, b"refused: this server answers only its own page")


def test_a_write_from_another_site_or_without_an_origin_is_refused_and_the_file_kept(served):
    before = served.file.read_bytes()
    body = b'{"text": "network pwned { input 3x8x8 }"}'
    for origin in ({"Origin": "http://attacker.example"}, {"Origin": "null"}, {}):
        headers = {"Host": f"127.0.0.1:{served.port}", **served.cookie, **origin}
        status, _ = _request(served, "PUT", "/api/file", headers, body)
        assert status == 403
        # a form's text/plain post, which needs no preflight: refused by its Origin even with the cookie
        plain = {**headers, "Content-Type": "text/plain"}
        assert _request(served, "POST", "/api/analyse", plain, body) == (
            403,
            b"refused: this server answers only its own page",
        )
    assert served.file.read_bytes() == before


def test_nothing_outside_the_file_and_the_package_assets_is_served(served):
    for path in (
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/etc/passwd",
        "/static//etc/passwd",
        "/api/file/../../../etc/passwd",
    ):
        status, body = _request(served, "GET", path, _own(served))
        assert status == 404 and b"root:" not in body and b"import" not in body, path
    assert _request(served, "GET", "/static/codemirror.js", _own(served))[0] == 200


def test_another_local_client_without_the_token_is_refused_on_every_endpoint(served, tmp_path):
    """Another user of the machine knows the port and sends the right Host and Origin, but never saw the
    printed URL: 403 for the page, the assets, the file (read and write), the analysis (which would read a
    private .cnn elsewhere through `import`), the learner's view and a websocket; the file is kept."""
    private = tmp_path / "private.cnn"
    private.write_text("network secret_net { input 3x8x8, relu }\n", encoding="utf-8")
    analysis = json.dumps({"text": f'import "{private}"\nnetwork alexnet {{ input 3x8x8, relu }}'}).encode()
    before = served.file.read_bytes()
    headers = {"Host": f"127.0.0.1:{served.port}", "Origin": f"http://127.0.0.1:{served.port}"}
    websocket = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}
    requests = [
        ("GET", "/", {}, b""),
        ("HEAD", "/", {}, b""),
        ("GET", "/static/app.js", {}, b""),
        ("GET", "/api/file", {}, b""),
        ("GET", "/api/version", {}, b""),
        ("PUT", "/api/file", {}, b'{"text": "network pwned { input 3x8x8 }"}'),
        ("POST", "/api/analyse", {"Content-Type": "application/json"}, analysis),
        ("GET", "/api/layer?id=1&name=features.conv1", {}, b""),
        ("GET", "/", {**websocket, "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}, b""),
        ("GET", f"/?token={served.token[:-1]}", {}, b""),  # a token one character short
        ("GET", "/api/file", {"Cookie": f"cnndsl-serve-{served.port}=guess"}, b""),
    ]
    for method, path, extra, body in requests:
        status, answer = _request(served, method, path, {**headers, **extra}, body)
        assert status == 403, (method, path, status)
        assert b"secret_net" not in answer and b"alexnet" not in answer
    assert served.file.read_bytes() == before
    status, answer = _request(served, "POST", "/api/analyse", _own(served), analysis)  # the owner's page may
    assert status == 200 and json.loads(answer)["ok"] is True


def test_a_websocket_without_the_token_or_from_another_origin_is_closed_before_it_is_accepted():
    """uvicorn answers a websocket closed before it is accepted with 403; the server has no websocket route, and
    uvicorn here has no websocket library, so the guards are called as uvicorn would call them."""
    import asyncio

    from cnndsl.serve.app import SameOriginOnly
    from cnndsl.serve.guard import TokenRequired

    reached = []

    async def inner(scope, receive, send):
        reached.append(scope["path"])

    app = SameOriginOnly(TokenRequired(inner, "t0ken", "cnndsl-serve-1"), {"127.0.0.1:1"})

    def connect(headers: dict, query: str = "") -> list[dict]:
        sent = []

        async def receive():
            return {"type": "websocket.connect"}

        async def send(message):
            sent.append(message)

        pairs = [(name.encode(), value.encode()) for name, value in headers.items()]
        scope = {"type": "websocket", "path": "/ws", "query_string": query.encode(), "headers": pairs}
        asyncio.run(app(scope, receive, send))
        return sent

    own = {"host": "127.0.0.1:1", "origin": "http://127.0.0.1:1"}
    closed = [{"type": "websocket.close", "code": 1008}]
    assert connect(own) == closed
    assert connect({**own, "cookie": "cnndsl-serve-1=t0ke"}) == closed
    assert connect(own, "token=t0ke") == closed
    assert connect({**own, "origin": "http://evil.example", "cookie": "cnndsl-serve-1=t0ken"}) == closed
    assert connect({**own, "host": "evil.example:1", "cookie": "cnndsl-serve-1=t0ken"}) == closed
    assert reached == []
    assert connect({**own, "cookie": "cnndsl-serve-1=t0ken"}) == [] and connect(own, "token=t0ken") == []
    assert reached == ["/ws", "/ws"]


def test_the_printed_urls_token_sets_a_strict_httponly_cookie_and_leads_to_the_clean_url(served):
    from http.cookies import SimpleCookie

    connection = http.client.HTTPConnection(served.host, served.port, timeout=10)
    try:
        connection.request("GET", f"/?token={served.token}", headers={"Host": f"127.0.0.1:{served.port}"})
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    assert (response.status, response.getheader("Location")) == (303, "/")
    cookie = SimpleCookie(response.getheader("Set-Cookie"))[f"cnndsl-serve-{served.port}"]
    assert cookie.value == served.token and len(served.token) == 43  # 32 random bytes, URL-safe base64
    assert (cookie["httponly"], cookie["samesite"].lower(), cookie["path"]) == (True, "strict", "/")
    status, page = _request(served, "GET", "/", {"Host": f"127.0.0.1:{served.port}", **served.cookie})
    assert status == 200 and b"<title>" in page


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_bound(served):
    """No Content-Length: the server counts the body as it streams and answers 413 while the client is still
    sending a body that never ends, instead of waiting to buffer all of it."""
    head = "".join(f"{name}: {value}\r\n" for name, value in _own(served).items())
    chunk = b"%x\r\n%s\r\n" % (1 << 20, b" " * (1 << 20))
    with socket.create_connection((served.host, served.port), timeout=10) as connection:
        connection.sendall(
            f"POST /api/analyse HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(64):  # 64 MiB at most, and never the closing empty chunk
            if select.select([connection], [], [], 0)[0]:
                break
            try:
                connection.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        while not answer.endswith(b"}") and (part := connection.recv(1 << 16)):
            answer += part
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert answer.endswith(b'{"error":"the request is larger than 8,388,608 bytes"}')


def _analyse(served: Served, text: str, timeout: float = 10) -> dict:
    body = json.dumps({"text": text}).encode()
    status, answer = _request(served, "POST", "/api/analyse", _own(served), body, timeout)
    assert status == 200
    return json.loads(answer)


QUICK = "network alexnet { input 3x8x8, conv3x3(4) }"  # 4·3·3·3 + 4 = 112 parameters
TIME_LIMIT_S = 10  # an analysis's by default, as docs/serve.md states it


def test_an_edit_supersedes_a_runaway_analysis_at_once(served):
    running = ThreadPoolExecutor(1).submit(_analyse, served, f"{SLEEP}\nnetwork alexnet {{ input 3x8x8, relu }}")
    time.sleep(1.0)
    started = time.monotonic()
    assert _analyse(served, QUICK)["params"] == 112
    assert running.result(timeout=5) == {"ok": False, "superseded": True}
    assert time.monotonic() - started < 3


def test_an_analysis_that_keeps_taking_memory_is_stopped_at_its_bound(served):
    """The hog takes 64 MiB every 0.05 s: the worker's bound (1 GiB more than it held) stops it within a second
    or two, long before the time limit; unbounded, it would hold its 1.5 GiB for an hour."""
    started = time.monotonic()
    answer = _analyse(served, f"{HOG}\nnetwork alexnet {{ input 3x8x8, relu }}")
    assert time.monotonic() - started < TIME_LIMIT_S
    assert answer["error"] == {
        "message": "the analysis needed more than 1 GiB of memory and was stopped",
        "hint": "a smaller input shape or fewer layers",
        "here": False,
        "line": None,
        "column": None,
        "where": None,
        "rendered": "error: the analysis needed more than 1 GiB of memory and was stopped\n"
        "hint: a smaller input shape or fewer layers",
    }
    assert _analyse(served, QUICK)["params"] == 112  # a fresh worker takes the next text


def test_a_bug_met_by_an_analysis_is_said_on_the_page_and_the_next_text_is_analysed(served):
    answer = _analyse(served, f"{FAIL}\nnetwork alexnet {{ input 3x8x8, relu }}")
    assert answer["error"]["rendered"] == (
        "error: cnndsl failed on this text (RuntimeError: on purpose)\n"
        "hint: this is a bug in cnndsl: please report it with the text"
    )
    assert _analyse(served, QUICK)["params"] == 112


def test_an_analysis_past_its_time_limit_is_stopped(tmp_path):
    """At `--time-limit 2` (the default 10 s would hold a test worker for 10 s)."""
    shutil.copy(ROOT / "library" / "alexnet.cnn", tmp_path / "alexnet.cnn")
    (tmp_path / "hooks").mkdir()
    server = _start_server(tmp_path / "alexnet.cnn", tmp_path / "hooks", "-n", "alexnet", "--time-limit", "2")
    try:
        assert _analyse(server, QUICK)["params"] == 112
        started = time.monotonic()
        answer = _analyse(server, f"{SLEEP}\nnetwork alexnet {{ input 3x8x8, relu }}", timeout=12)
        assert 2 <= time.monotonic() - started < 2 + 3
        assert answer["error"]["rendered"] == (
            "error: the analysis took longer than 2 s and was stopped\n"
            "hint: a smaller input shape or fewer layers, or a longer `cnndsl serve --time-limit`; "
            "`cnndsl check` on the file says more"
        )
        assert _analyse(server, QUICK)["params"] == 112
    finally:
        server.process.terminate()
        server.process.communicate(timeout=10)


def test_the_time_limit_is_a_number_of_seconds_from_half_a_second_to_ten_minutes(cli, tmp_path):
    done = cli("serve", tmp_path / "net.cnn", "--time-limit", "0.1")
    assert done.exit_code == 2
    assert "Invalid value for '--time-limit': 0.1 is not in the range 0.5<=x<=600." in done.stderr


def _running(pid: int) -> bool:
    """Whether the process exists and is not a zombie (a container's init may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _descendants(pid: int) -> set[int]:
    """The processes below `pid`, from each process's parent in /proc/N/stat."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_the_server_stops_at_once_while_an_analysis_runs_away(tmp_path, stop):
    (tmp_path / "hooks").mkdir()
    server = _start_server(tmp_path / "net.cnn", tmp_path / "hooks")
    try:
        running = ThreadPoolExecutor(1).submit(_analyse, server, f"{SLEEP}\nnetwork n {{ input 3x8x8, relu }}", 30)
        time.sleep(1.5)
        family = _descendants(server.process.pid)  # the forkserver, the worker analysing and its `dot`
        started = time.monotonic()
        server.process.send_signal(stop)
        output, _ = server.process.communicate(timeout=20)
        assert time.monotonic() - started < 5
        assert server.process.returncode == (0 if stop == signal.SIGINT else -signal.SIGTERM)
        assert output == ("cnndsl serve: stopped\n" if stop == signal.SIGINT else "")
        try:
            answer = running.result(timeout=10)
        except (OSError, http.client.HTTPException):
            answer = None  # the connection closed
        assert answer in (None, {"ok": False, "superseded": True})
        deadline = time.monotonic() + 5
        while [pid for pid in family if _running(pid)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in family if _running(pid)]
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


def test_ctrl_c_stops_the_server_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from cnndsl.cli import main; main()",
            "serve",
            str(tmp_path / "net.cnn"),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert "http://127.0.0.1:" in process.stdout.readline()
    time.sleep(0.5)  # a person reads the URL first
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=20)
    assert (process.returncode, output) == (0, "cnndsl serve: stopped\n")
    assert not (tmp_path / "net.cnn").exists()  # nothing is written unless the page saves


def test_a_busy_port_is_a_clear_error(served, cli, tmp_path):
    result = cli("serve", tmp_path / "net.cnn", "--port", served.port)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot listen on 127.0.0.1:{served.port}: Address already in use\n"
        "hint: choose another port with --port, or --port 0 for any free one\n"
    )


def test_the_file_must_be_a_cnn_file(cli):
    result = cli("serve", "resnet50")
    assert result.exit_code == 2 and "expected a .cnn file (a new one is created on the first save)" in result.stderr


# ---- the page in a browser ----------------------------------------------------------------------------------
def _chromium() -> str | None:
    return os.environ.get("CNNDSL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def page(served):
    """One headless Chromium for all the browser tests, on the served page."""
    if _chromium() is None:
        pytest.skip(
            "Chromium is not installed: `apt-get install chromium` (scripts/test does this as root), "
            "or set CNNDSL_CHROMIUM to a Chromium binary"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed: pip install playwright")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium())
        tab = browser.new_page(viewport={"width": 1400, "height": 900})
        tab.requested = []
        tab.on("request", lambda request: tab.requested.append(request.url))
        tab.goto(served.entry)
        tab.wait_for_selector("#diagram svg", timeout=15_000)
        yield tab
        browser.close()


def _place_cursor(page, offset: int) -> None:
    page.evaluate(
        "(offset) => { const view = window.cnndsl.view; view.focus(); view.dispatch({selection: {anchor: offset}}); }",
        offset,
    )


def _editor_text(page) -> str:
    return page.evaluate("() => window.cnndsl.view.state.doc.toString()")


def test_the_page_shows_the_files_diagram_and_summary(page, served):
    drawn = page.text_content("#diagram svg")
    assert "alexnet" in drawn and "conv 11×11, 64, /4" in drawn
    assert _editor_text(page) == served.file.read_text(encoding="utf-8")
    assert page.inner_text("table.cnndsl-summary .cnndsl-params") == "61,100,840"


def test_the_page_loads_nothing_from_elsewhere(page, served):
    assert page.requested and all(url.startswith(served.url) for url in page.requested), page.requested
    assert {url[len(served.url) :] for url in page.requested} >= {
        f"?token={served.token}",
        "",
        "static/codemirror.js",
        "static/app.js",
        "static/style.css",
        "api/file",
        "api/analyse",
    }


def test_a_typo_is_underlined_at_its_line_and_column_within_a_second_and_fixing_it_redraws(page, served):
    text = served.file.read_text(encoding="utf-8")
    offset = text.index("conv5x5(192), relu") + len("conv5x5(192), relu")
    line = text.count("\n", 0, offset) + 1
    column = offset - text.rfind("\n", 0, offset) - len("relu")
    _place_cursor(page, offset)
    page.keyboard.type("x")
    started = time.monotonic()
    page.wait_for_selector(".cm-lintRange-error", timeout=1000)
    assert time.monotonic() - started < 1.0
    assert page.inner_text(".cm-lintRange-error") == "relux"
    assert page.inner_text("#error-text").startswith(f"{served.file}:{line}:{column}: error: unknown layer `relux`")
    assert "hint: did you mean `relu`?" in page.inner_text("#error-text")
    assert "stale" in page.get_attribute("#diagram", "class")

    page.keyboard.press("Backspace")
    page.wait_for_selector("#error", state="hidden", timeout=2000)
    page.wait_for_selector("#diagram:not(.stale) svg", timeout=2000)
    assert page.query_selector(".cm-lintRange-error") is None
    assert page.inner_text("table.cnndsl-summary .cnndsl-params") == "61,100,840"


def test_clicking_a_layer_shows_its_figures_worked_out_by_hand(page):
    page.click("#diagram g.node:has(a[*|title='features.conv1'])")
    page.wait_for_selector("#learner:not([hidden]) td")
    shown = page.inner_text("#learner")
    assert "3×227×227 → 64×56×56" in shown
    assert "⌊(227 − 11 + 2·2)/4⌋ + 1 = 56" in shown
    assert "64·3·11·11 + 64 = 23,296" in shown
    assert "1 + (11 − 1)·1·1 = 11" in shown  # receptive field

    text = _editor_text(page)  # the working follows an edit of the layer: k=11 -> k=7
    start = text.index("k=11") + len("k=")
    _replace(page, start, start + 2, "7")
    page.wait_for_function(
        "() => document.querySelector('#learner').innerText.includes('⌊(227 − 7 + 2·2)/4⌋ + 1 = 57')", timeout=2000
    )
    assert "64·3·7·7 + 64 = 9,472" in page.inner_text("#learner")
    _replace(page, start, start + 1, "11")
    page.wait_for_function("() => document.querySelector('#learner').innerText.includes('= 23,296')", timeout=2000)
    assert _editor_text(page) == text


def _replace(page, start: int, end: int, typed: str) -> None:
    """Select start..end in the editor and type over it, as a user does."""
    page.evaluate(
        "([from, to]) => { const view = window.cnndsl.view; view.focus(); "
        "view.dispatch({selection: {anchor: from, head: to}}); }",
        [start, end],
    )
    page.keyboard.type(typed)


def test_ctrl_s_writes_the_editors_text_to_the_file(page, served):
    text = _editor_text(page)
    start = text.index("classes=1000") + len("classes=")
    _replace(page, start, start + 4, "10")
    page.wait_for_function(
        "() => document.querySelector('table.cnndsl-summary .cnndsl-params').textContent === '57,044,810'", timeout=2000
    )
    assert served.file.read_text(encoding="utf-8") == text  # not saved yet
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 3
    while served.file.read_text(encoding="utf-8") != _editor_text(page) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.file.read_text(encoding="utf-8") == text.replace("classes=1000", "classes=10", 1)
    assert [path.name for path in served.file.parent.iterdir()] == [served.file.name]  # no temp file left
    page.wait_for_selector("#dirty", state="hidden")


def test_a_change_on_disk_reloads_the_editor_and_the_diagram(page, served):
    text = served.file.read_text(encoding="utf-8")
    served.file.write_text(text.replace("conv5x5(192)", "conv5x5(128)", 1), encoding="utf-8")
    page.wait_for_function("() => window.cnndsl.view.state.doc.toString().includes('conv5x5(128)')", timeout=3000)
    page.wait_for_function(
        "() => document.querySelector('#diagram svg').textContent.includes('conv 5×5, 128')", timeout=3000
    )


def test_a_screenshot_of_the_page_is_not_blank(page):
    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 24)  # (count, colour) pairs
    not_white = sum(count for count, colour in colours if sum(colour) < 3 * 240)
    assert image.size == (1400, 900)
    assert len(colours) > 50 and not_white > 0.03 * 1400 * 900


def test_an_edit_remakes_only_the_table_parts_it_changes_and_the_table_is_right(page):
    """103 layers: parts of 40, 40 and 23 rows. Changing the last fc (4·12 + 12 = 60 parameters after the pooling,
    instead of 4·10 + 10 = 50; with the conv's 4·3·3·3 + 4 = 112, 172 in all) remakes the last part and the
    totals; the first part stays the same element."""
    text = _editor_text(page)
    many = "network alexnet {\n    input 3x8x8\n    conv3x3(4), relu x 100, gap, fc(10)\n}\n"  # served as `-n alexnet`
    _set_text(page, 0, len(text), many)
    page.wait_for_function("() => document.querySelectorAll('#table tr[data-layer]').length === 103", timeout=3000)
    page.evaluate("() => { document.querySelector('#table tr[data-layer]').marked = 1; }")
    start = many.index("fc(10)") + len("fc(")
    _set_text(page, start, start + 2, "12")
    page.wait_for_function("() => document.querySelector('.cnndsl-params').textContent === '172'", timeout=3000)
    shown = page.evaluate(
        "() => [...document.querySelectorAll('#table tr[data-layer]')]"
        ".map((row) => [row.dataset.layer, row.cells[2].textContent])"
    )
    assert [name for name, _ in shown] == ["conv", *(f"relu{index}" for index in range(1, 101)), "gap", "fc"]
    assert (shown[0], shown[-1]) == (["conv", "112"], ["fc", "60"])
    assert page.evaluate("() => document.querySelector('#table tr[data-layer]').marked") == 1
    assert page.evaluate("() => document.querySelectorAll('#table > *').length") == 5  # head, 3 parts, totals
    _set_text(page, 0, len(_editor_text(page)), text)
    page.wait_for_function("() => document.querySelectorAll('#table tr[data-layer]').length === 21", timeout=3000)


def _set_text(page, start: int, end: int, text: str) -> None:
    """Replace start..end of the editor's text in one change, as a paste does (typing would auto-indent)."""
    page.evaluate(
        "([from, to, insert]) => window.cnndsl.view.dispatch({changes: {from, to, insert}})", [start, end, text]
    )


def test_the_page_opened_with_the_token_drops_it_from_its_url_and_its_script_cannot_read_the_cookie(page, served):
    assert page.url == served.url
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly


def test_a_runaway_analysis_does_not_freeze_the_page(page):
    """The next edit, 1.2 s into an analysis that never ends, is answered at once: 7·3·3·3 + 7 = 196 parameters."""
    text = _editor_text(page)
    _set_text(page, 0, len(text), f"{SLEEP}\n{text}")
    time.sleep(1.2)  # that text's analysis is in flight, past the page's SUPERSEDE_MS (1 s)
    _set_text(page, 0, len(_editor_text(page)), "network alexnet {\n    input 3x8x8\n    conv3x3(7)\n}\n")
    page.wait_for_function(
        "() => document.querySelector('#diagram svg').textContent.includes('conv 3×3, 7')", timeout=3000
    )
    assert page.inner_text("table.cnndsl-summary .cnndsl-params") == "196"
    _set_text(page, 0, len(_editor_text(page)), text)
    page.wait_for_function("() => document.querySelectorAll('#table tr[data-layer]').length === 21", timeout=3000)
