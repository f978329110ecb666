"""The .cnn blocks that stand for Ultralytics' modules (ultralytics/nn/modules), each as its forward computes.

`ACT` in a block's text is the model's activation (SiLU unless the YAML's `activation:` says otherwise);
a block is written into the imported file only where a row uses it, after the blocks it calls."""

from __future__ import annotations

import re

from ..core.errors import CnnDslError, SourcePos

DETECT_BN = "bn(eps=0.001, momentum=0.03)"  # DetectionModel's initialize_weights sets both on every norm
BN = "BN"  # a placeholder: ClassificationModel keeps PyTorch's defaults
BLOCKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "conv_bn_ACT": (
        f"block conv_bn_ACT(c, k=1, s=1, p=k // 2, g=1) {{ conv(c, k=k, s=s, p=p, g=g, bias=false), {BN}, ACT }}"
        "  # Conv",
        (),
    ),
    "conv_bn": (f"block conv_bn(c, k=1, s=1, p=k // 2, g=1) {{ conv(c, k=k, s=s, p=p, g=g, bias=false), {BN} }}", ()),
    "bottleneck": (
        """block bottleneck(c, shortcut=true, k=3, e=0.5) {  # Bottleneck: adds its input where the widths agree
    if shortcut and in.c == c { residual { conv_bn_ACT(floor(c * e), k), conv_bn_ACT(c, 3) } }
    else { conv_bn_ACT(floor(c * e), k), conv_bn_ACT(c, 3) }
}""",
        ("conv_bn_ACT",),
    ),
    "c2f": (
        """block c2f(c, n=1, shortcut=false, e=0.5) {  # C2f: each bottleneck reads the last part, all are joined
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    dense { chunk(2 + i, 1 + i), bottleneck(h, shortcut, 3, 1) } x n
    conv_bn_ACT(c)
}""",
        ("bottleneck",),
    ),
    "c3": (
        """block c3(c, n=1, shortcut=true, e=0.5, k=1) {  # C3 (C3k with k=3): bottlenecks beside a 1x1 path
    let h = floor(c * e)
    branch { conv_bn_ACT(h), bottleneck(h, shortcut, k, 1) x n | conv_bn_ACT(h) }
    conv_bn_ACT(c)
}""",
        ("bottleneck",),
    ),
    "c3k2": (
        """block c3k2(c, n=1, c3k=false, e=0.5, shortcut=true) {  # C3k2: C2f with C3k or plain bottlenecks
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    dense {
        chunk(2 + i, 1 + i)
        if c3k { c3(h, 2, shortcut, k=3) } else { bottleneck(h, shortcut) }
    } x n
    conv_bn_ACT(c)
}""",
        ("c3",),
    ),
    "sppf": (
        "block sppf(c, k=5) { conv_bn_ACT(in.c // 2), dense { chunk(1 + i, i), maxpool(k=k, s=1, p=k // 2) } x3"
        ", conv_bn_ACT(c) }  # SPPF",
        ("conv_bn_ACT",),
    ),
    "spp": (
        """block spp(c, k=[5, 9, 13]) {  # SPP: the map beside its max pools of each size
    conv_bn_ACT(in.c // 2)
    branch { identity | maxpool(k=k[0], s=1, p=k[0] // 2) | maxpool(k=k[1], s=1, p=k[1] // 2) | maxpool(k=k[2], s=1, p=k[2] // 2) }
    conv_bn_ACT(c)
}""",
        ("conv_bn_ACT",),
    ),
    "detect_level": (
        """block detect_level(ch0, classes, reg_max=16) {  # Detect at one level: box distribution, class scores
    let c2 = max(16, ch0 // 4, 4 * reg_max), let c3 = max(ch0, min(classes, 100))
    branch {
        conv_bn_ACT(c2, 3), conv_bn_ACT(c2, 3), conv(4 * reg_max, k=1)
      | conv_bn_ACT(c3, 3), conv_bn_ACT(c3, 3), conv(classes, k=1)
    }
}""",
        ("conv_bn_ACT",),
    ),
    "detect_level_dw": (
        """block detect_level_dw(ch0, classes, reg_max=16) {  # Detect at one level, depthwise class path
    let c2 = max(16, ch0 // 4, 4 * reg_max), let c3 = max(ch0, min(classes, 100))
    branch {
        conv_bn_ACT(c2, 3), conv_bn_ACT(c2, 3), conv(4 * reg_max, k=1)
      | conv_bn_ACT(ch0, 3, g=ch0), conv_bn_ACT(c3), conv_bn_ACT(c3, 3, g=c3), conv_bn_ACT(c3), conv(classes, k=1)
    }
}""",
        ("conv_bn_ACT",),
    ),
    "classify": (
        "block classify(classes, k=1, s=1) { conv_bn_ACT(1280, k, s), gap, fc(classes) }"
        "  # Classify (dropout 0 left out)",
        ("conv_bn_ACT",),
    ),
}

ACTIVATIONS = {"SiLU": "silu", "ReLU": "relu", "ReLU6": "relu6", "Hardswish": "hardswish", "Mish": "mish",
               "GELU": "gelu", "Tanh": "tanh", "Sigmoid": "sigmoid", "ELU": "elu", "LeakyReLU": "leakyrelu"}  # fmt: skip


def activation(spec, file: str, line: int) -> tuple[str, str]:
    """The layer and a short name for the YAML's `activation:` (`torch.nn.ReLU()`), read without eval."""
    if spec is None:
        return "silu", "silu"
    found = re.fullmatch(r"\s*(?:torch\.)?nn\.(\w+)\(\s*([0-9.eE+-]*)\s*(?:,\s*inplace\s*=\s*True\s*)?\)\s*", str(spec))
    if not found or found.group(1) not in ACTIVATIONS:
        raise CnnDslError(
            f"activation `{spec}` is not imported",
            SourcePos(file, line, 1),
            f"known: {', '.join(f'nn.{name}()' for name in ACTIVATIONS)}",
        )
    layer, argument = ACTIVATIONS[found.group(1)], found.group(2)
    if argument and layer not in ("leakyrelu", "elu"):
        raise CnnDslError(f"activation `{spec}` takes no argument here", SourcePos(file, line, 1))
    if layer == "leakyrelu":
        return f"leakyrelu({argument or 0.01})", "leaky"
    return (f"elu({argument})" if argument else layer), layer


def blocks_text(used: set[str], act_layer: str, act_name: str, norm: str) -> list[str]:
    """The used blocks and those they call, callees first, with the activation and the norm filled in."""
    order: list[str] = []

    def visit(name: str) -> None:
        for callee in BLOCKS[name][1]:
            visit(callee)
        if name not in order:
            order.append(name)

    for name in sorted(used):
        visit(name)
    texts = [BLOCKS[name][0].replace("conv_bn_ACT", f"conv_bn_{act_name}") for name in order]
    return [text.replace("ACT", act_layer).replace(", BN", f", {norm}") for text in texts]
