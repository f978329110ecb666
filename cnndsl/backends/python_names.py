"""The one authority for every Python name a backend writes (as torch.fx's `_Namespace`).

Generated code names classes, constructor parameters, local values and attributes after what the source
says (`resnet50`, a block's `c`, a tap's label); here each becomes a legal name that clashes with no
keyword and none of the names the file itself imports or defines, the same one on every run. A
`Namespace` hands out names unique within one scope: numbered (`x1`, `Bottleneck2`) where one is taken.
"""

from __future__ import annotations

import keyword

RESERVED = frozenset(
    {"self", "torch", "F", "nn", "input", "OrderedDict", "_numbered"}
    | {"deform_conv2d", "grid_anchors", "batched_rois", "roi_align", "_interpolation", "roi_pool", "_bins"}
    | {"decode_boxes", "clip_boxes", "top_k", "_flat_scores", "multiscale_roi_align"}
    | {"yolo_decode", "grid_decode", "greedy_nms", "detections_nms", "level_nms", "roi_detections"}
    # ops/torch_functions.NAMES: the functions a file defines where its layers need them
)  # the file's own names


def is_name(text: object) -> bool:
    """A Python identifier that is not a keyword (soft keywords such as `match` are names)."""
    return isinstance(text, str) and text.isidentifier() and not keyword.iskeyword(text)


def is_free(text: object) -> bool:
    """A name the generated file may bind: legal, and none of the names it imports or defines."""
    return is_name(text) and text not in RESERVED


def value_name(label: str | None, fallback: str = "x") -> str:
    """A local value named after the source's label (`enc1`), else `fallback`."""
    return label if is_free(label) else fallback


def parameter_name(name: str) -> str:
    """A block parameter as a constructor argument: `c` as it is, `class` or `torch` with `_` added."""
    return name if is_free(name) else f"{name}_"


def class_name(name: str, suffix: str) -> str:
    """`resnet50` -> `Resnet50`, `unet_small` -> `UnetSmall`; one Python or the file already uses gets
    `suffix` (`Network`, `Block`) added, and an empty one is the suffix alone."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    if not camel:
        return suffix
    return camel if is_free(camel) else f"{camel}{suffix}"


def quoted(name: str) -> str:
    """A name as a double-quoted literal (module names are ASCII identifiers, keywords included)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attribute(owner: str, name: str) -> str:
    """`owner.name`, or `getattr(owner, "name")` where the name is not a Python identifier (`class`)."""
    return f"{owner}.{name}" if is_name(name) else f"getattr({owner}, {quoted(name)})"


def module_path(owner: str, path: str) -> str:
    """The expression for the submodule at a dotted IR name."""
    for part in path.split("."):
        owner = attribute(owner, part)
    return owner


def assignment(owner: str, name: str, value: str) -> str:
    """The statement that sets a submodule: `owner.name = value`, or `add_module` for a keyword."""
    head, tail = assignment_around(owner, name)
    return f"{head}{value}{tail}"


def assignment_around(owner: str, name: str) -> tuple[str, str]:
    """The text before and after the value in `assignment`."""
    if is_name(name):
        return f"{owner}.{name} = ", ""
    return f"{owner}.add_module({quoted(name)}, ", ")"


class Namespace:
    """Names unique within one scope: the preferred one, else the first of preferred1, preferred2, ...
    not in use. `release` frees a name (a value no later line reads), so the next value may take it."""

    def __init__(self):
        self.used: set[str] = set()
        self.counts: dict[str, int] = {}

    def fresh(self, preferred: str) -> str:
        candidate, number = preferred, 0
        while candidate in self.used:
            number += 1
            candidate = f"{preferred}{number}"
        self.used.add(candidate)
        return candidate

    def release(self, name: str) -> None:
        self.used.discard(name)

    def __contains__(self, name: str) -> bool:
        return name in self.used

    def counted(self, preferred: str) -> str:
        """`preferred` the first time, then preferred2, preferred3, ... (classes of one block), skipping
        any name already in use."""
        number = self.counts.get(preferred, 0)
        while True:
            number += 1
            candidate = preferred + (str(number) if number > 1 else "")
            if candidate not in self.used:
                break
        self.counts[preferred] = number
        self.used.add(candidate)
        return candidate
