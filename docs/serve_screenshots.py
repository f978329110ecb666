"""Redraw docs/serve.png and docs/serve-error.png: `cnndsl serve` on the library's AlexNet (on a 227×227
input) in headless Chromium, with a layer clicked, then with a typo. Needs Chromium and Playwright.

    python docs/serve_screenshots.py
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS = Path(__file__).resolve().parent


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    file = folder / "alexnet.cnn"
    text = (DOCS.parent / "library" / "alexnet.cnn").read_text(encoding="utf-8")
    file.write_text(text.replace("input 3x224x224", "input 3x227x227", 1), encoding="utf-8")  # the lecture's size
    command = [
        sys.executable,
        "-c",
        "from cnndsl.cli import main; main()",
        "serve",
        file.name,
        "-n",
        "alexnet",
        "--port",
        "0",
    ]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=folder)
    url = re.search(r"http://\S+", server.stdout.readline()).group(0)  # the token included
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=os.environ.get("CNNDSL_CHROMIUM", "/usr/bin/chromium"))
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.wait_for_selector("#diagram svg")
            page.check("#shapes")
            page.wait_for_function("() => document.querySelector('#diagram svg').textContent.includes('64×56×56')")
            page.click("#diagram g.node:has(a[*|title='features.conv1'])")
            page.wait_for_selector("#learner:not([hidden]) td")
            page.screenshot(path=str(DOCS / "serve.png"))
            page.click("#learner-close")
            text = page.evaluate("() => window.cnndsl.view.state.doc.toString()")
            offset = text.index("conv5x5(192), relu") + len("conv5x5(192), relu")
            page.evaluate(
                "(at) => { const v = window.cnndsl.view; v.focus(); v.dispatch({selection: {anchor: at}}); }", offset
            )
            page.keyboard.type("x")
            page.wait_for_selector(".cm-lintRange-error")
            page.hover(".cm-lintRange-error")
            page.wait_for_selector(".cm-tooltip-lint")
            page.screenshot(path=str(DOCS / "serve-error.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
