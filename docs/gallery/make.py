"""Draw the gallery: `python docs/gallery/make.py` writes one SVG per entry beside this file.

tests/test_graphviz.py checks that every committed SVG still shows what its entry draws today.
"""

from __future__ import annotations

from pathlib import Path

import cnndsl
from cnndsl.backends.graphviz import render

HERE = Path(__file__).resolve().parent

# file name, library network, diagram options, caption for the README
GALLERY = [
    ("vgg16.svg", "vgg16", {}, "VGG-16, every layer"),
    ("resnet50-depth1.svg", "resnet50", {"depth": 1}, "ResNet-50, `--depth 1`: one box per stage"),
    ("resnet50-depth2.svg", "resnet50", {"depth": 2}, "ResNet-50, `--depth 2`: stages open, blocks folded `×n`"),
    ("densenet121.svg", "densenet121", {"depth": 3}, "DenseNet-121, `--depth 3`: dense layers folded `×n`"),
    ("googlenet.svg", "googlenet", {"depth": 2}, "GoogLeNet, `--depth 2`: inception modules with their branches"),
    ("unet.svg", "unet", {"depth": 1, "shapes": True}, "U-Net, `--depth 1 --shapes`: crop-and-concat skips"),
]


def main() -> None:
    for file, name, options, _ in GALLERY:
        render(cnndsl.load(name), HERE / file, "svg", **options)
        print(f"wrote {HERE / file}")


if __name__ == "__main__":
    main()
