"""Model files for bench/fuzz.py's importers (issue 24): Darknet .cfg, Caffe .prototxt and Ultralytics YAML,
each a real file mutated (tests/data/importers, the YAMLs the `ultralytics` package ships) or a hostile one
made whole: nesting thousands deep, YAML anchors that would expand a billion-fold, huge repeat counts, scales
and widths, bytes that are not UTF-8, NULs, cut files. `cnndsl import` of one must end in .cnn text or a
CnnDslError; text it writes must parse (a syntax error in it is the importer's escape), and the network it
describes loads or is refused with a located error.

A recipe is a seed: the worker builds the file from it (before its clock starts), so a run is reproducible.
bench/fuzz.py sends the seeds that are 4 modulo 20 here, or every seed with `--only importer`.
"""

from __future__ import annotations

import importlib.util
import random
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = {"darknet": ".cfg", "caffe": ".prototxt", "ultralytics": ".yaml"}
MAX_NODES = 500  # as bench/fuzz.py: a network that repeats a lot ends at the limit in milliseconds
NUMBERS = ["0", "-1", "1", "2", "3", "7", "1000000", "9007199254740993", "1e400", "-1e-300", "nan", "inf",
           "0x10", "1.5", "99999999999999999999999999", "9" * 5000, "", "abc", "True", "[]", "{}"]  # fmt: skip
NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:e-?\d+)?")


@cache
def corpus() -> dict[str, list[bytes]]:
    """The real files of each format that this checkout and its installed packages hold."""
    files = {
        "darknet": sorted((ROOT / "tests/data/importers/darknet").glob("*.cfg")),
        "caffe": sorted((ROOT / "tests/data/importers/caffe").glob("*.prototxt")),
    }
    spec = importlib.util.find_spec("ultralytics")  # found, not imported: its import patches Pillow
    models = Path(spec.origin).parent / "cfg" / "models" if spec and spec.origin else None
    files["ultralytics"] = sorted(models.rglob("*.yaml"))[::4] if models and models.is_dir() else []
    return {fmt: [path.read_bytes() for path in paths] for fmt, paths in files.items() if paths}


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four changes, half of them a number replaced; else lines cut, repeated, swapped or moved, bytes
    flipped, or the file cut."""
    lines = data.split(b"\n")
    for _ in range(rng.choice([1, 1, 2, 4])):
        change = rng.choice([0, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8])
        at = rng.randrange(len(lines)) if lines else 0
        if change <= 2 and lines:  # numbers are what a hostile file changes most usefully
            numbers = list(NUMBER.finditer(lines[at]))
            if numbers:
                found = rng.choice(numbers)
                line = lines[at]
                lines[at] = line[: found.start()] + rng.choice(NUMBERS).encode() + line[found.end() :]
        elif change == 3 and lines:
            del lines[at : at + rng.choice([1, 1, 3, 20])]
        elif change == 4 and lines:
            lines[at:at] = lines[at : at + rng.choice([1, 5, 30])] * rng.choice([2, 10, 200])
        elif change == 5 and len(lines) > 1:
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        elif change == 6 and lines:
            lines.insert(rng.randrange(len(lines)), lines.pop(at))
        elif change == 7:
            text = bytearray(b"\n".join(lines))
            for _ in range(rng.randint(1, 8)):
                if text:
                    text[rng.randrange(len(text))] = rng.choice([0, 0xFF, 0xC3, ord("{"), ord("}"), ord("["), ord("&")])
            lines = bytes(text).split(b"\n")
        else:
            text = b"\n".join(lines)
            lines = text[: rng.randrange(len(text) + 1)].split(b"\n")
    return b"\n".join(lines)


def _hostile(fmt: str, rng: random.Random) -> bytes:
    """A file made whole to break a reader: nesting, aliases, repeats, sizes past any machine."""
    depth = rng.choice([40, 1000, 5000])
    size = rng.choice(["0", "-3", "2147483648", "9007199254740993", "1e30"])
    if fmt == "ultralytics":
        row = f"  - [-1, {rng.choice(['1', '3', size])}, {rng.choice(['Conv', 'C2f', 'SPPF', 'nn.Upsample'])}, "
        made = {
            0: "nc: 80\nbackbone: " + "[" * depth + "]" * depth + "\nhead: []\n",
            1: "nc: 80\nbackbone:\n" + row + "[&a [64, 3, 2], " + ", ".join(["*a"] * 50) + "]]\nhead: []\n",
            2: f"nc: {size}\nscales:\n  n: [{size}, {size}, {size}]\nbackbone:\n{row}[{size}, 3, 2]]\n"
            "head:\n  - [-1, 1, Classify, [10]]\n",
            3: "nc: 80\nbackbone:\n"
            + "".join(f"  - [{-rng.randint(1, 9)}, 1, Conv, [16, 3, 1]]\n" for _ in range(300))
            + "head:\n  - [[-1, -2, -3], 1, Concat, [1]]\n  - [-1, 1, Classify, [10]]\n",
            4: "nc: 80\nbackbone: " + "{a: " * depth + "1" + "}" * depth + "\nhead: []\n",
        }
    elif fmt == "caffe":
        layer = 'layer {{ name: "l{i}" type: "{kind}" bottom: "{bottom}" top: "{top}" {param} }}\n'
        head = f'input: "data"\ninput_shape {{ dim: 1 dim: 3 dim: {size} dim: 8 }}\n'
        made = {
            0: head + "layer { " * depth + "}" * depth,
            1: head + 'layer { name: "c" type: "Convolution" ' + "convolution_param { " * depth + "}" * depth + "}",
            2: head
            + "".join(
                layer.format(
                    i=i,
                    kind=rng.choice(["ReLU", "Convolution", "Pooling", "Concat", "Eltwise"]),
                    bottom=rng.choice(["data", f"l{max(i - 1, 0)}", f"l{i // 2}"]),
                    top=f"l{i}",
                    param=rng.choice(["", f"convolution_param {{ num_output: {size} kernel_size: 3 }}"]),
                )
                for i in range(200)
            ),  # fmt: skip
            3: head + 'layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { '
            f"num_output: {size} kernel_size: {size} stride: {size} pad: {size} group: {size} }} }}\n",
        }
    else:
        conv = (
            f"[convolutional]\nfilters={size}\nsize={rng.choice(['1', '3', size])}\nstride=1\npad=1\nactivation=leaky\n"
        )
        made = {
            0: f"[net]\nwidth={size}\nheight=416\nchannels=3\n" + conv * rng.choice([1, 100]),
            1: "[net]\nwidth=64\nheight=64\nchannels=3\n"
            + "".join(f"[route]\nlayers={-rng.randint(1, 50)},{rng.randint(-5, 60)}\n" for _ in range(200)),
            2: "[net]\nwidth=64\nheight=64\nchannels=3\n"
            + "[convolutional]\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
            + "".join(
                f"[shortcut]\nfrom={rng.choice(['-1', '-3', '-1000', size])}\nactivation=linear\n" for _ in range(100)
            ),
            3: "[net]\nwidth=64\nheight=64\nchannels=3\n" + "[" * depth + "\n" + "x=" + "y" * 100000 + "\n",
        }
    return made[rng.randrange(len(made))].encode()


def write(seed: int, folder: Path) -> Path:
    """The model file of `seed`: three in four a mutated real file, the rest made whole."""
    rng = random.Random(seed)
    files = corpus()
    fmt = rng.choice(sorted(files))
    data = _mutate(rng.choice(files[fmt]), rng) if rng.randrange(4) else _hostile(fmt, rng)
    path = folder / f"model{SUFFIXES[fmt]}"
    path.write_bytes(data)
    return path


def run(path: Path) -> tuple[str | None, str]:
    """(None, "imported") for text whose network loads, (None, "error X") for a CnnDslError of import or load;
    text that does not parse is an escape, and anything else raised is the caller's escape."""
    import cnndsl
    from cnndsl.api import instantiate
    from cnndsl.core.errors import SyntaxProblem
    from cnndsl.front.load import Loader
    from cnndsl.importers import import_file

    try:
        text = import_file(path)
    except cnndsl.CnnDslError as error:
        error.render(path.read_bytes().decode("utf-8", "replace"))  # the message as the user sees it
        return None, f"error {type(error).__name__}"
    try:
        module = Loader().load_text(text, "imported.cnn")
        for name in module.networks[:1]:
            instantiate(module, name, "imported.cnn", text, None, MAX_NODES, {})
    except SyntaxProblem as error:
        return f"the imported text does not parse: {error.render(text)[:300]}", "escape"
    except cnndsl.CnnDslError as error:
        error.render(text)
        return None, f"imported-refused {type(error).__name__}"
    return None, "imported"
