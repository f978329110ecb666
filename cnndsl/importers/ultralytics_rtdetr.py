"""Handlers and blocks for RT-DETR's modules (ultralytics/cfg/models/rt-detr): PP-HGNetV2's HGStem, HGBlock and
DWConv, the hybrid encoder's RepC3 and AIFI, and the RTDETRDecoder head, mixed into the row converter like
MoreModules.

HGStem and HGBlock take their widths from the YAML as they stand (parse_model scales neither) and always use
ReLU (their `act` defaults to nn.ReLU, whatever the YAML's activation); DWConv is a Conv with
groups = gcd(c1, c2)."""

from __future__ import annotations

from .ultralytics_blocks import BLOCKS
from .ultralytics_more import Written, padded
from .ultralytics_yaml import Row

BLOCKS.update(
    {
        "hgconv": (
            "block hgconv(c, k=1, s=1, p=k // 2, g=1) { conv(c, k=k, s=s, p=p, g=g, bias=false), BN, relu }"
            "  # Conv with ReLU, as PP-HGNetV2 builds it",
            (),
        ),
        "hgstem": (
            """block hgstem(cm, c) {  # HGStem: a strided conv, then a 2x2 max pool beside two 2x2 convs, joined
    hgconv(cm, 3, 2), zeropad([0, 1, 0, 1])
    branch { maxpool(k=2, s=1) | hgconv(cm // 2, 2, p=0), zeropad([0, 1, 0, 1]), hgconv(cm, 2, p=0) }
    hgconv(cm, 3, 2), hgconv(c)
}""",
            ("hgconv",),
        ),
        "hgblock": (
            """block hgblock(cm, c, k=3, n=6, light=false, shortcut=false) {  # HGBlock: n convs in a chain, all joined
    if shortcut and in.c == c { residual { hgblock_body(cm, c, k, n, light) } }
    else { hgblock_body(cm, c, k, n, light) }
}""",
            ("hgblock_body",),
        ),
        "hgblock_body": (
            """block hgblock_body(cm, c, k, n, light) {  # each conv (LightConv: 1x1, then depthwise) reads the last
    let c1 = in.c
    dense {
        if i > 0 { split([c1 + (i - 1) * cm, cm], 1) }
        if light { conv_bn(cm), hgconv(cm, k, g=cm) } else { hgconv(cm, k) }
    } x n
    hgconv(c // 2), hgconv(c)
}""",
            ("hgconv", "conv_bn"),
        ),
        "repc3": (
            """block repc3(c, n=3, e=1.0) {  # RepC3: RepConvs after a 1x1 conv, plus a 1x1 conv of the input
    let h = floor(c * e)
    residual { conv_bn_ACT(h), repconv(h) x n } shortcut { conv_bn_ACT(h) }
    if h != c { conv_bn_ACT(c) }
}""",
            ("conv_bn_ACT", "repconv"),
        ),
    }
)


def _whole(row: Row, *values) -> None:
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise row.error(f"takes whole numbers from 1 here, not {list(values)}")


class RTDETRModules:
    """Handlers `m_<Module>` for the converter; they use its width(), repeat(), times(), used and _csp()."""

    def m_HGStem(self, row, args, inputs):
        cm, c = padded(row, args, [None, None], "HGStem", required=2)
        _whole(row, cm, c)
        self.used.add("hgstem")
        return Written(self.times(row, f"hgstem({cm}, {c})"), str(c))

    def m_HGBlock(self, row, args, inputs):
        cm, c, k, light, shortcut = padded(row, args, [None, None, 3, False, False], "HGBlock", required=2)
        _whole(row, cm, c, k)
        if not isinstance(light, bool) or not isinstance(shortcut, bool):
            raise row.error(f"takes true or false for lightconv and shortcut, not {args[3:]}")
        n = self.repeat(row)  # parse_model passes the repeats as the block's n
        options = [f"k={k}"] * (k != 3) + [f"n={n}"] + ["light=true"] * light
        options += ["shortcut=true"] * shortcut
        self.used.add("hgblock")
        return Written(f"hgblock({', '.join([str(cm), str(c), *options])})", str(c))

    def m_DWConv(self, row, args, inputs):
        c, k, s, d, act = padded(row, args, [None, 1, 1, 1, True], "DWConv")
        _whole(row, k, s, d)
        if d != 1 or not isinstance(act, bool):
            raise row.error("with a dilation or an activation of its own is not imported")
        name = self.conv if act else "conv_bn"
        self.used.add("conv_bn_ACT" if act else "conv_bn")
        width = self.width(row, c)
        options = [width, str(k)] + [str(s)] * (s != 1) + [f"g=gcd({inputs[0]}, {width})"]
        return Written(self.times(row, f"{name}({', '.join(options)})"), width)

    def m_RepC3(self, row, args, inputs):
        c, e = padded(row, args, [None, 1.0], "RepC3")
        return self._csp(row, "repc3", c, [f"e={e!r}"] * (e != 1.0))

    def m_AIFI(self, row, args, inputs):
        cm, heads = padded(row, args, [2048, 8], "AIFI", required=0)
        _whole(row, cm, heads)
        return Written(self.times(row, f"aifi({cm}, {heads})"), inputs[0])

    def m_RTDETRDecoder(self, row, args, inputs):
        """The decoder on its first source, the others tapped; its input projections' batch norms as
        DetectionModel's initialize_weights sets every BatchNorm2d (eps 0.001, momentum 0.03)."""
        classes, *rest = padded(row, args, list(DECODER_DEFAULTS.values()), "RTDETRDecoder")
        given = dict(zip(list(DECODER_DEFAULTS)[1:], rest))
        if row.repeats != 1:
            raise row.error("is imported once per row, not repeated")
        if given.pop("act") is not None or given.pop("learnt_init_query") is not False:
            raise row.error("with an activation of its own or learnt initial queries is not imported")
        for training in ("dropout", "nd", "label_noise_ratio", "box_noise_scale"):  # training alone reads these
            given.pop(training)
        _whole(row, *(value for key, value in given.items() if key != "eval_idx"))
        options = [f"{DECODER_NAMES[key]}={value}" for key, value in given.items() if value != DECODER_DEFAULTS[key]]
        taps = [f"@l{source}" for source in row.sources[1:]]
        text = ", ".join([self.classes(row, classes), *taps, *options, "bn_eps=0.001", "bn_momentum=0.03"])
        return Written(f"rtdetrdecoder({text})", "")


DECODER_DEFAULTS = {"nc": None, "hd": 256, "nq": 300, "ndp": 4, "nh": 8, "ndl": 6, "d_ffn": 1024, "dropout": 0.0,
                    "act": None, "eval_idx": -1, "nd": 100, "label_noise_ratio": 0.5, "box_noise_scale": 1.0,
                    "learnt_init_query": False}  # fmt: skip
DECODER_NAMES = {"hd": "hidden", "nq": "queries", "ndp": "points", "nh": "heads", "ndl": "layers", "d_ffn": "ffn",
                 "eval_idx": "eval_idx"}  # fmt: skip
RTDETR_NOTE = [
    "# RTDETRDecoder ends at every query's box (cx, cy, w, h as fractions of the input) beside its sigmoid class",
    "# scores; Ultralytics' eval output then keeps the 300 best (score, class) pairs: that top-k is not imported.",
]
