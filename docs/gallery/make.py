"""Draw the gallery: `python docs/gallery/make.py` writes one SVG per entry beside this file.

GALLERY is what the README shows; FAMILIES is one network of each library family drawn as `cnndsl draw`
draws it without options (the depth that fits a page, the layout its structure asks for); STYLES is U-Net,
a YOLO and VGG-16 in each layout and style. docs/gallery/README.md shows the last two.
tests/test_graphviz.py and tests/test_figures.py check that every committed SVG still shows what its entry
draws today.
"""

from __future__ import annotations

from pathlib import Path

import cnndsl
from cnndsl.backends.diagram_fit import with_fitting_depth
from cnndsl.backends.diagram_options import DiagramOptions
from cnndsl.backends.graphviz import svg

HERE = Path(__file__).resolve().parent

# file name, library network, diagram options, caption for the README
GALLERY = [
    ("vgg16.svg", "vgg16", {"depth": 2}, "VGG-16, every layer"),
    ("resnet50-depth1.svg", "resnet50", {"depth": 1}, "ResNet-50, `--depth 1`: one box per stage"),
    ("resnet50-depth2.svg", "resnet50", {"depth": 2}, "ResNet-50, `--depth 2`: stages open, blocks folded `×n`"),
    ("densenet121.svg", "densenet121", {"depth": 3}, "DenseNet-121, `--depth 3`: dense layers folded `×n`"),
    ("googlenet.svg", "googlenet", {"depth": 2}, "GoogLeNet, `--depth 2`: inception modules with their branches"),
    ("unet.svg", "unet", {"depth": 1, "shapes": True}, "U-Net, `--depth 1 --shapes`: the U, skips straight across"),
]

FAMILY_NETWORKS = [
    "alexnet", "convnext_tiny", "densenet201", "efficientnet_b0", "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_vgg16", "fcn8s", "googlenet", "inception_v3", "lenet5", "mnasnet1_0", "mobilenet_v3_large",
    "regnet_y_400mf", "resnet152", "deeplabv3_resnet50", "se_resnet50", "shufflenet_v2_x1_0", "squeezenet1_1", "unet",
    "vgg16", "xception", "yolov1", "yolov3", "yolov8n", "yolo11n",
]  # fmt: skip
FAMILIES = [(f"default-{name}.svg", name, {}, f"`cnndsl draw {name}`") for name in FAMILY_NETWORKS]

STYLES = [
    (f"{name}-{look}.svg", name, options, f"{name}, `--{' --'.join(f'{k} {v}' for k, v in options.items())}`")
    for name in ("unet", "yolov8n", "vgg16")
    for look, options in (
        ("flow", {"layout": "flow"}),
        ("u", {"layout": "u"}),
        ("columns", {"layout": "columns"}),
        ("blocks", {"style": "blocks"}),
    )
]


SCREENSHOTS = ("yolov8n", "unet", "resnet152", "densenet201")  # screenshots.py photographs their defaults


def drawn(name: str, options: dict) -> str:
    """The SVG `cnndsl draw NAME -o x.svg` with these options writes: without a depth, the one that fits."""
    network = cnndsl.load(name)
    chosen, _ = with_fitting_depth(network, "svg", DiagramOptions(**options))
    return svg(network, **chosen.figure())


def main() -> None:
    for file, name, options, _ in GALLERY + FAMILIES + STYLES:
        (HERE / file).write_text(drawn(name, options), encoding="utf-8")
        print(f"wrote {HERE / file}")
    rows = [
        "# Gallery",
        "",
        "Made by `python docs/gallery/make.py`; `tests/test_figures.py` holds each to the code.",
        "",
    ]
    for title, entries in (("Each family as `cnndsl draw` draws it", FAMILIES), ("Layouts and styles", STYLES)):
        rows += [f"## {title}", ""]
        rows += [f"{caption}\n\n![{file}]({file})\n" for file, _, _, caption in entries]
    rows += ["## In a browser", "", "Screenshots by headless Chromium (`python docs/gallery/screenshots.py`).", ""]
    rows += [f"![{name}](screenshots/{name}.png)\n" for name in SCREENSHOTS]
    (HERE / "README.md").write_text("\n".join(rows), encoding="utf-8")


if __name__ == "__main__":
    main()
