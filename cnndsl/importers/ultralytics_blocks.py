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
    "classify": (
        "block classify(classes, k=1, s=1) { conv_bn_ACT(1280, k, s), gap, fc(classes) }"
        "  # Classify (dropout 0 left out)",
        ("conv_bn_ACT",),
    ),
}

DETECT = """block {name}(ch0, classes, reg_max=16) {{  # Detect at one level: {what}
    let c2 = max(16, ch0 // 4, 4 * reg_max), let c3 = max(ch0, min(classes, 100))
    branch {{
        conv_bn_ACT(c2, 3), conv_bn_ACT(c2, 3), conv(4 * reg_max, k=1)
      | {classes_path}, conv(classes, k=1)
    }}
}}"""
BLOCKS["detect_level"] = (
    DETECT.format(
        name="detect_level",
        what="box distribution, class scores",
        classes_path="conv_bn_ACT(c3, 3), conv_bn_ACT(c3, 3)",
    ),
    ("conv_bn_ACT",),
)
BLOCKS["detect_level_dw"] = (  # models with C3k2, C2fCIB or A2C2f (Detect.legacy false)
    DETECT.format(
        name="detect_level_dw",
        what="depthwise class path",
        classes_path="conv_bn_ACT(in.c, 3, g=in.c), conv_bn_ACT(c3), conv_bn_ACT(c3, 3, g=c3), conv_bn_ACT(c3)",
    ),
    ("conv_bn_ACT",),
)
BLOCKS.update(
    {
        "c2": (
            """block c2(c, n=1, shortcut=true, e=0.5) {  # C2: bottlenecks on one half, joined with the other
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    branch { chunk(2, 0), bottleneck(h, shortcut, 3, 1) x n | chunk(2, 1) }
    conv_bn_ACT(c)
}""",
            ("bottleneck",),
        ),
        "ghostconv": (
            """block ghostconv(c, k=1, s=1, act=true) {  # GhostConv: half the channels, then a 5x5 depthwise of them
    if act { conv_bn_ACT(c // 2, k, s), dense { conv_bn_ACT(c // 2, 5, g=c // 2) } }
    else { conv_bn(c // 2, k, s), dense { conv_bn(c // 2, 5, g=c // 2) } }
}""",
            ("conv_bn_ACT", "conv_bn"),
        ),
        "c3ghost": (
            """block c3ghost(c, n=1, e=0.5) {  # C3Ghost: C3 with ghost bottlenecks
    let h = floor(c * e)
    branch { conv_bn_ACT(h), residual { ghostconv(h // 2), ghostconv(h, act=false) } x n | conv_bn_ACT(h) }
    conv_bn_ACT(c)
}""",
            ("ghostconv",),
        ),
        "resnetlayer": (
            """block resnetblock(c, s=1, e=4) {  # ResNetBlock: a bottleneck whose sum is ReLU'd
    if s != 1 or in.c != e * c {
        residual { conv_bn_ACT(c), conv_bn_ACT(c, 3, s), conv_bn(e * c) } shortcut { conv_bn(e * c, 1, s) }
    } else { residual { conv_bn_ACT(c), conv_bn_ACT(c, 3), conv_bn(e * c) } }
    relu
}
block resnetlayer(c, s=1, first=false, n=1, e=4) {  # ResNetLayer: a stem, or n ResNet bottlenecks
    if first { conv_bn_ACT(c, 7, 2), maxpool(k=3, s=2, p=1) }
    else { resnetblock(c, s if i == 0 else 1, e) x n }
}""",
            ("conv_bn_ACT", "conv_bn"),
        ),
        "repconv": (
            "block repconv(c) { residual { conv_bn(c, 3) } shortcut { conv_bn(c, 1) }, silu }  # RepConv (always SiLU)",
            ("conv_bn",),
        ),
        "repcsp": (
            """block repcsp(c, n=1) {  # RepCSP: C3 with RepConv bottlenecks
    let h = c // 2
    branch { conv_bn_ACT(h), residual { repconv(h), conv_bn_ACT(h, 3) } x n | conv_bn_ACT(h) }
    conv_bn_ACT(c)
}""",
            ("conv_bn_ACT", "repconv"),
        ),
        "repncspelan4": (
            """block repncspelan4(c, c3, c4, n=1) {  # RepNCSPELAN4: two CSP stages on the last half, all joined
    y: conv_bn_ACT(c3)
    chunk(2, 1), repcsp(c4, n), z: conv_bn_ACT(c4, 3)
    repcsp(c4, n), w: conv_bn_ACT(c4, 3)
    @y, concat(@z, @w), conv_bn_ACT(c)
}""",
            ("repcsp",),
        ),
        "elan1": (
            """block elan1(c, c3, c4) {  # ELAN1: two convolutions on the last half, all joined
    y: conv_bn_ACT(c3)
    chunk(2, 1), z: conv_bn_ACT(c4, 3), w: conv_bn_ACT(c4, 3)
    @y, concat(@z, @w), conv_bn_ACT(c)
}""",
            ("conv_bn_ACT",),
        ),
        "aconv": ("block aconv(c) { avgpool(k=2, s=1), conv_bn_ACT(c, 3, 2) }  # AConv", ("conv_bn_ACT",)),
        "adown": (
            """block adown(c) {  # ADown: after a 2x2 average, one half by a strided conv, the other max-pooled
    avgpool(k=2, s=1)
    branch { chunk(2, 0), conv_bn_ACT(c // 2, 3, 2) | chunk(2, 1), maxpool(k=3, s=2, p=1), conv_bn_ACT(c // 2) }
}""",
            ("conv_bn_ACT",),
        ),
        "sppelan": (
            "block sppelan(c, c3, k=5) { conv_bn_ACT(c3), dense { chunk(1 + i, i), maxpool(k=k, s=1, p=k // 2) } x3"
            ", conv_bn_ACT(c) }  # SPPELAN",
            ("conv_bn_ACT",),
        ),
    }
)

BLOCKS["psablock"] = (  # with the attend kinds (cnndsl/ops/psa_attention.py) only
    """block attention(c, heads) {  # Attention: softmax attention over the pixels, plus a depthwise 3x3 of the values
    let key_dim = c // heads // 2
    qkv: conv_bn(c + 2 * key_dim * heads)
    attendvalues(heads, key_dim)
    pe: conv_bn(c, 3, g=c)
    @qkv, attend(heads, key_dim), add(@pe)
    conv_bn(c)
}
block psablock(c) { residual { attention(c, max(c // 64, 1)) }, residual { conv_bn_ACT(2 * c), conv_bn(c) } }  # PSABlock""",
    ("conv_bn_ACT", "conv_bn"),
)
BLOCKS["c2psa"] = (
    """block c2psa(c, n=1, e=0.5) {  # C2PSA: attention blocks (a head per 64 channels) on one half
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    branch { chunk(2, 0) | chunk(2, 1), psablock(h) x n }
    conv_bn_ACT(c)
}""",
    ("psablock",),
)

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
