"""docs/torch.md runs as written: its python blocks in order in one namespace, its console commands print
what it shows, and its code excerpts are in the code generated so far."""

from __future__ import annotations

from pathlib import Path

from docs_pages import run_page


def _generated_code(namespace: dict, folder: Path) -> str:
    """`model.code` of the module the page last built, and every source file its commands wrote."""
    model = namespace.get("model")
    files = [path.read_text(encoding="utf-8") for path in sorted(folder.glob("*.py"))]
    return "\n".join([getattr(model, "code", ""), *files])


def test_every_example_on_the_page_runs(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}

    def excerpt(fence):
        assert fence.kind == "text"
        assert fence.body in _generated_code(namespace, tmp_path)

    ran = run_page("torch.md", cli, namespace, other=excerpt)
    assert ran["python"] >= 6 and ran["console"] >= 1 and ran["text"] >= 1
