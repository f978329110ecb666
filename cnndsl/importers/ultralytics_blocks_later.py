"""The .cnn blocks for the modules of YOLOv10, YOLO12 and YOLO26 (ultralytics/nn/modules/block.py), each as its
forward computes; added to BLOCKS of ultralytics_blocks, written the same way (`ACT`, `BN`)."""

from __future__ import annotations

from .ultralytics_blocks import BLOCKS

BLOCKS.update(
    {
        "scdown": (
            "block scdown(c, k=3, s=2) { conv_bn_ACT(c), conv_bn(c, k, s, g=c) }"
            "  # SCDown: pointwise, then a strided depthwise conv without activation",
            ("conv_bn_ACT", "conv_bn"),
        ),
        "psa": (
            "block psa(c, e=0.5) { c2psa(c, 1, e) }  # PSA: C2PSA with one attention block",
            ("c2psa",),
        ),
        "repvggdw": (
            "block repvggdw(c) { residual { conv_bn(c, 7, g=c) } shortcut { conv_bn(c, 3, g=c) }, silu }"
            "  # RepVGGDW (always SiLU)",
            ("conv_bn",),
        ),
        "c2fcib": (
            """block cib_body(c, lk=false) {  # CIB's convolutions: depthwise 3x3 around pointwise ones
    conv_bn_ACT(c, 3, g=c), conv_bn_ACT(2 * c)
    if lk { repvggdw(2 * c) } else { conv_bn_ACT(2 * c, 3, g=2 * c) }
    conv_bn_ACT(c), conv_bn_ACT(c, 3, g=c)
}
block c2fcib(c, n=1, shortcut=false, lk=false, e=0.5) {  # C2fCIB: C2f with CIB blocks
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    dense {
        chunk(2 + i, 1 + i)
        if shortcut { residual { cib_body(h, lk) } } else { cib_body(h, lk) }
    } x n
    conv_bn_ACT(c)
}""",
            ("conv_bn_ACT", "repvggdw"),
        ),
        "sppf_n": (
            """block sppf_pools(c, k, n) { conv_bn(in.c // 2), dense { chunk(1 + i, i), maxpool(k=k, s=1, p=k // 2) } x n, conv_bn_ACT(c) }
block sppf_n(c, k=5, n=3, shortcut=false) {  # SPPF as YOLO26 writes it: its first conv unactivated, n pools
    if shortcut and in.c == c { residual { sppf_pools(c, k, n) } } else { sppf_pools(c, k, n) }
}""",
            ("conv_bn_ACT", "conv_bn"),
        ),
        "c3k2_psa": (
            """block c3k2_psa(c, n=1, e=0.5, shortcut=true) {  # C3k2 with attention: a bottleneck and a PSABlock per part
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    dense { chunk(2 + i, 1 + i), bottleneck(h, shortcut), psablock(h) } x n
    conv_bn_ACT(c)
}""",
            ("bottleneck", "psablock"),
        ),
        "a2c2f": (
            """block aattn(c, heads, area) {  # AAttn: attention within each area, plus a 7x7 depthwise conv of the values
    qkv: conv_bn(3 * c)
    attendvalues(heads, c // heads)
    pe: conv_bn(c, 7, g=c)
    @qkv, attend(heads, c // heads, area=area), add(@pe)
    conv_bn(c)
}
block ablock(c, area, mlp) {  # ABlock: area attention (a head per 32 channels), then an MLP, each added
    residual { aattn(c, c // 32, area) }, residual { conv_bn_ACT(floor(c * mlp)), conv_bn(c) }
}
block a2c2f_parts(c, n, a2, area, mlp, e, shortcut) {  # each part reads the last; all are joined
    let h = floor(c * e)
    conv_bn_ACT(h)
    dense {
        chunk(1 + i, i)
        if a2 { ablock(h, area, mlp) x2 } else { c3(h, 2, shortcut, k=3) }
    } x n
    conv_bn_ACT(c)
}
block a2c2f(c, n=1, a2=true, area=1, gamma=false, mlp=2.0, e=0.5, shortcut=true) {  # A2C2f (YOLO12)
    if a2 and gamma { residual { a2c2f_parts(c, n, a2, area, mlp, e, shortcut), layerscale(0.01) } }
    else { a2c2f_parts(c, n, a2, area, mlp, e, shortcut) }
}""",
            ("conv_bn_ACT", "conv_bn", "c3"),
        ),
        "extra_level": (
            """block extra_level(ch0, n) {  # a level's mask coefficients, keypoints or angles (Segment, Pose, OBB: cv4)
    let c4 = max(ch0 // 4, n)
    conv_bn_ACT(c4, 3), conv_bn_ACT(c4, 3), conv(n, k=1)
}""",
            ("conv_bn_ACT",),
        ),
        "proto": (
            "block proto(c, masks) { conv_bn_ACT(c, 3), deconv(c, k=2, s=2), conv_bn_ACT(c, 3), conv_bn_ACT(masks) }"
            "  # Proto: the mask prototypes at twice the first level's size",
            ("conv_bn_ACT",),
        ),
    }
)
