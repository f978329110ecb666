"""Screenshots of default figures as a browser shows them: `python docs/gallery/screenshots.py` draws each
network as `cnndsl draw NAME -o NAME.svg` does and has headless Chromium photograph the SVG at its own size,
into docs/gallery/screenshots/NAME.png. tests/test_figures.py checks each PNG is as large as today's figure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cnndsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make import SCREENSHOTS  # noqa: E402

HERE = Path(__file__).resolve().parent
SHOTS = HERE / "screenshots"


def main() -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        sys.exit("needs Chromium (apt install chromium)")
    SHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in SCREENSHOTS:
            figure = cnndsl.load(name).draw(Path(folder) / f"{name}.svg")
            width, height = figure_pixels(figure.read_text(encoding="utf-8"))
            subprocess.run(
                [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--screenshot={SHOTS / f'{name}.png'}", f"--window-size={width},{height}", figure.as_uri()],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            print(f"wrote {SHOTS / f'{name}.png'} ({width}×{height})")


def figure_pixels(svg_text: str) -> tuple[int, int]:
    """An SVG's size in CSS px, as a browser shows it (Graphviz writes points: 72 pt = 96 px)."""
    head = svg_text[: svg_text.index(">", svg_text.index("<svg"))]
    sizes = [re.search(rf'{side}="([\d.]+)(pt|px)"', head) for side in ("width", "height")]
    width, height = (float(found.group(1)) * (96 / 72 if found.group(2) == "pt" else 1) for found in sizes)
    return round(width), round(height)


if __name__ == "__main__":
    main()
