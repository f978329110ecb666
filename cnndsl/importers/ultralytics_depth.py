"""YOLO26's depth head (ultralytics/nn/modules/head.py: Depth), as its eval forward computes it.

Each level it reads is projected to `c_mid` channels by a 1x1 Conv (`proj`); from the coarsest, each finer
level in turn is reached by a bilinear 2x resize with align_corners, the level's projection added, and two 3x3
Conv (`refine`); the head then halves the width, doubles the size by a transposed convolution, quarters the
width and predicts one log-depth channel, clamped to [-4, 5]; the eval output is exp(cal_a · log-depth + cal_b),
cal_a and cal_b being the calibration buffers a checkpoint holds (`calibrate`). The export-only 4x resize
(`Depth.export`) is not imported: Ultralytics' eval output is at 1/4 of the input, as here.

The checkpoint's modules meet the network's layers in forward order (`depth_children`, `calibrated_last`):
every projection, the refinements from the coarsest level's down, the head, then the calibration."""

from __future__ import annotations

from .ultralytics_blocks import BLOCKS
from .ultralytics_more import Written, padded

CLAMP = (-4.0, 5.0)  # Depth.forward's bounds on the log-depth
CHILDREN = {"proj", "refine", "head"}  # Depth's submodules, as registered
DEPTH_NOTE = [
    "# Depth ends as Ultralytics' eval output: the depth map at 1/4 of the input, exp(cal_a * log-depth + cal_b)",
    "# with the log-depth clamped to [-4, 5]; cal_a and cal_b are the checkpoint's calibration (1 and 0 without",
    "# one). The 4x resize to the input's size that Ultralytics adds for export only is not imported.",
]

BLOCKS["depth_head"] = (
    f"""block depth_head(c) {{  # Depth's head: one log-depth channel at twice the size, clamped, calibrated, exp
    conv_bn_ACT(c // 2, 3), deconv(c // 2, k=2, s=2), conv_bn_ACT(c // 4, 3), conv(1, k=1)
    clamp({CLAMP[0]:g}, {CLAMP[1]:g}), calibrate, exp
}}""",
    ("conv_bn_ACT",),
)


class DepthModule:
    """`m_Depth` for the row converter: the whole head as statements of its own (`Written.parts`), the first
    reading each level, the last the head's output."""

    def m_Depth(self, row, args, inputs):
        (c_mid,) = padded(row, args[:1], [None], "Depth")  # parse_model drops any later argument, needs c_mid
        if isinstance(c_mid, bool) or not isinstance(c_mid, int) or c_mid < 4:
            raise row.error(f"takes its width c_mid as a whole number from 4 (the head quarters it), not `{c_mid!r}`")
        self.used.add("depth_head")
        levels = len(row.sources)
        parts = [f"@l{source}, proj{level}: {self.conv}({c_mid})" for level, source in enumerate(row.sources)]
        resize = "upsample(2, mode=bilinear, align_corners=true)"
        parts += [  # finer and finer: from the coarsest level's projection, the one just written
            f"{resize}, add(@proj{level}), ({self.conv}({c_mid}, 3) x 2)" for level in range(levels - 2, -1, -1)
        ]
        parts.append(f"depth_head({c_mid})")
        return Written("", "1", tuple(parts))


def depth_children(node: dict) -> list[str] | None:
    """Depth's submodules in the order its forward runs them (the refinements from the coarsest level's), or None
    for another module."""
    if set(node) != CHILDREN:
        return None
    return ["proj", *(f"refine.{i}" for i in sorted(node["refine"], key=int, reverse=True)), "head"]


def calibrated_last(children: set[str], own: list[str]) -> bool:
    """Whether a module's own tensors are Depth's calibration, used after its children."""
    return children == CHILDREN and {key.rpartition(".")[2] for key in own} == {"cal_a", "cal_b"}
