"""YOLO-World's modules (C2fAttn, WorldDetect), mixed into the row converter, and the blocks they use.

Ultralytics' WorldModel holds the class text as a tensor, `txt_feats` (1 × classes × 512, from CLIP by
`set_classes`), and its eval forward hands that one tensor, expanded to the batch, to every C2fAttn and to
WorldDetect: the text is state of the model, the same for every image, not an input per image. The import so
writes it as a buffer the checkpoint supplies (`text: textembed(classes)`), first in the network, as the
state_dict's `txt_feats` comes first. A .cnn block cannot read a tap of its caller, so the rows that read the
text are written as statements of the network: the blocks hold what reads no text."""

from __future__ import annotations

from ..core.errors import CnnDslError
from ..graph import ir
from .ultralytics_blocks import BLOCKS, DETECT_BN
from .ultralytics_more import Written, padded
from .writing import Statement

TEXT_DIMS = 512  # WorldModel's txt_feats: CLIP ViT-B/32's text embeddings
TEXT_HEADS = {"WorldDetect", "YOLOEDetect", "YOLOESegment", "YOLOESegment26"}  # YOLOE's: ultralytics_yoloe

BLOCKS.update(
    {
        "c2fattn_parts": (
            """block c2fattn_parts(c, n=1, shortcut=false, e=0.5) {  # C2fAttn before its attention: C2f's parts
    let h = floor(c * e)
    conv_bn_ACT(2 * h)
    dense { chunk(2 + i, 1 + i), bottleneck(h, shortcut, 3, 1) } x n
}""",
            ("bottleneck",),
        ),
        "world_box": (
            """block world_box(ch0, reg_max=16) {  # WorldDetect's box path at one level (Detect's cv2)
    let c2 = max(16, ch0 // 4, 4 * reg_max)
    conv_bn_ACT(c2, 3), conv_bn_ACT(c2, 3), conv(4 * reg_max, k=1)
}""",
            ("conv_bn_ACT",),
        ),
        "world_embed": (
            """block world_embed(ch0, classes, embed=512) {  # WorldDetect's class path: an embedding per pixel (cv3)
    let c3 = max(ch0, min(classes, 100))
    conv_bn_ACT(c3, 3), conv_bn_ACT(c3, 3), conv(embed, k=1)
}""",
            ("conv_bn_ACT",),
        ),
    }
)

FORWARD_ORDER = [  # children as registered -> as forward runs them
    ({"cv1", "cv2", "m", "attn"}, ["cv1", "m", "attn", "cv2"]),  # C2fAttn
    ({"query", "key", "value", "proj", "projections"}, ["projections", "query", "key", "value", "proj"]),  # IPA
]


def own_last(children: set[str], own: list[str]) -> bool:
    """Whether a module's own tensors are used after its children's: MaxSigmoidAttnBlock adds its `bias` to what
    `gl` and the map gave (and the import writes proj_conv first), BNContrastiveHead scales what `norm` gave."""
    names = {key.rpartition(".")[2] for key in own}
    return (names == {"bias"} and {"gl", "proj_conv"} <= children) or (
        names == {"bias", "logit_scale"} and "norm" in children
    )


MISSING_TEXT = (
    "holds no `txt_feats`: WorldModel keeps its class text embeddings beside its state_dict, not in it; save "
    "them with it: state = model.state_dict(); state['txt_feats'] = model.txt_feats"
)

YOLOE_MISSING_TEXT = (
    "holds no `txt_feats`: YOLOE's text prompts are given to each call, not held in its state_dict; save those "
    "of the nc classes, before reprta, with it: state['txt_feats'] = model.get_text_pe(names, without_reprta=True)"
)

EXPORT = (
    'export the state_dict and the class text with Ultralytics once: python -c "import torch; from ultralytics '
    "import YOLO; m = YOLO('{stem}.pt').model.float(); s = m.state_dict(); s['txt_feats'] = m.txt_feats; "
    "torch.save(s, '{stem}-state.pt')\""
)


def held_classes(networks: list) -> list[int]:
    """The classes of the text the first network holds (textembed's), none for a model without class text."""
    layers = ir.layers(networks[0].graph) if networks else []
    return [layer.attrs["classes"] for _, layer in layers if layer.op == "textembed"]


def require_text(state: dict, networks: list, origin: str) -> None:
    """A network that holds the class text needs the checkpoint's `txt_feats`, which `state_dict()` leaves out."""
    held = held_classes(networks)
    if held and "txt_feats" not in state:
        yoloe = any(layer.op == "promptpool" for _, layer in ir.layers(networks[0].graph))
        raise CnnDslError(f"{origin} {YOLOE_MISSING_TEXT if yoloe else MISSING_TEXT}")
    shape = tuple(getattr(state.get("txt_feats"), "shape", ()))
    if held and len(shape) == 3 and shape[1] != held[0]:
        raise CnnDslError(
            f"{origin}: its txt_feats hold the text of {shape[1]} classes, the file's nc is {held[0]}",
            hint="the network's widths depend on nc (WorldDetect's class path), which set_classes does not "
            "change: save the text of the nc classes the model was built with",
        )


def with_text(statements: list[Statement]) -> list[Statement]:
    """The class text first, on its own line (the state_dict's `txt_feats` comes first), then the image again;
    the line names the first module that reads the text."""
    reader = next(statement.first for statement in statements if "@text" in statement.text)
    statements[0].starts_line = True
    return [
        Statement("textembed(classes)", reader, reader, "text", True),
        Statement("@in", reader, reader),
        *statements,
    ]


class WorldModules:
    """Handlers `m_<Module>` for the converter; they use its width(), repeat(), classes(), used and conv."""

    text_used = False
    text_tap = "text"  # the class text the next C2fAttn reads: ImagePoolingAttn's output after it

    def _text_dims(self, row, value, what: str) -> None:
        if value != TEXT_DIMS:
            raise row.error(f"with {what} {value!r} is not imported: WorldModel holds {TEXT_DIMS}-dim class text")

    def m_C2fAttn(self, row, args, inputs):
        """C2f whose last part also goes through MaxSigmoidAttnBlock, guided by the text. parse_model sets its
        embed channels to the hidden width (so the block's `ec` conv is never built) and scales its heads."""
        c, _ec, heads, guide, shortcut, g, e = padded(row, args, [None, None, 1, 512, False, 1, 0.5], "C2fAttn", 3)
        self._text_dims(row, guide, "guide channels")
        if g != 1 or not isinstance(shortcut, bool) or not isinstance(heads, int) or heads < 1:
            raise row.error("takes whole heads, a true/false shortcut and no groups here")
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e <= 1:
            raise row.error(f"takes an expansion e in (0, 1], not `{e!r}`")
        self.text_used = True
        self.used.update(("c2fattn_parts", "conv_bn", "conv_bn_ACT"))
        width, n, at = self.width(row, c), self.repeat(row), row.index
        hidden = f"{width} // 2" if e == 0.5 else f"floor({width} * {e!r})"
        if heads > 1:  # int(max(round(min(nh, max_channels // 2 // 32)) * width, 1))
            most = f"min({heads}, max_channels // 64)" if self.scales else str(heads)
            heads_text = f"floor(max({most} * width, 1))"
        else:
            heads_text = "1"
        options = [n] * (n != "1" or shortcut or e != 0.5) + ["true"] * shortcut + [f"e={e!r}"] * (e != 0.5)
        last = "chunk(3, 2)" if n == "1" else f"chunk({n} + 2, {n} + 1)"
        parts = (
            f"@l{row.sources[0]}, p{at}: c2fattn_parts({', '.join([width, *options])})",
            f"@{self.text_tap}, g{at}: fc({hidden}, pixelwise=true)",
            f"@p{at}, {last}, v{at}: conv_bn({hidden}, 3)",
            f"@p{at}, {last}, maxsigmoid(@g{at}, {heads_text}), a{at}: mul(@v{at})",
            f"@p{at}, concat(@a{at})",
        )
        return Written(f"{self.conv}({width})", width, parts)

    def m_ImagePoolingAttn(self, row, args, inputs):
        """The class text updated by attention over every level's map, each projected to `ec` channels and
        max-pooled to k×k patches; parse_model scales none of its widths. Its output is the text the later
        C2fAttn read (WorldDetect reads the text as the model holds it)."""
        ec, text_dims, heads, k, scale = padded(row, args, [256, 512, 8, 3, False], "ImagePoolingAttn", 0)
        self._text_dims(row, text_dims, "text channels")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (ec, heads, k)) or ec % heads:
            raise row.error(f"takes whole ec, heads and k, heads dividing ec, not {[ec, heads, k]}")
        if scale is not False:
            raise row.error("with a learned scale is not imported")
        if row.repeats != 1:
            raise row.error("is imported once per row, not repeated")
        self.text_used = True
        at, patches = row.index, k * k
        parts = [
            f"@l{source}, conv({ec}, k=1), adaptivemaxpool({k}), i{at}_{level}: reshape(({ec}, {patches}, 1))"
            for level, source in enumerate(row.sources)
        ]
        others = ", ".join(f"@i{at}_{level}" for level in range(1, len(row.sources)))
        parts.append(
            f"@i{at}_0, patches{at}: concat({others}, axis=1)" if others else f"@i{at}_0, patches{at}: identity"
        )
        parts += [
            f"@{self.text_tap}, layernorm, q{at}: fc({ec}, pixelwise=true)",
            *(f"@patches{at}, layernorm, {name}{at}: fc({ec}, pixelwise=true)" for name in ("k", "v")),
            f"@q{at}, crossattend(@k{at}, @v{at}, {heads}), fc({TEXT_DIMS}, pixelwise=true)",
        ]
        joined = f"add(@{self.text_tap})"
        self.text_tap = f"l{at}"
        return Written(joined, "", tuple(parts))

    def m_WorldDetect(self, row, args, inputs):
        """Detect's box path beside a class path that ends in an embedding per pixel, compared with the text."""
        classes, embed, with_bn = padded(row, args, [None, 512, False], "WorldDetect")
        self._text_dims(row, embed, "embed")
        if not isinstance(with_bn, bool):
            raise row.error(f"takes true or false for with_bn, not `{with_bn!r}`")
        if self.model.values.get("end2end"):
            raise row.error("with an end-to-end (one-to-one) copy is not imported")
        self.text_used = True
        self.used.update(("world_box", "world_embed"))
        reg_max = self.model.values.get("reg_max", 16)
        count = self.classes(row, classes)
        box = f"world_box({inputs[0]}{f', {reg_max}' * (reg_max != 16)})"
        parts = []
        for level, source in enumerate(row.sources):
            parts += [f"@l{source}, box{level}: {box}", f"@l{source}, embed{level}: world_embed({inputs[0]}, {count})"]
        contrast = f"{DETECT_BN}, contrast(@text, normalize=false)" if with_bn else "contrast(@text)"
        for level in range(len(row.sources)):
            parts += [f"@embed{level}, cls{level}: ({contrast})", f"@box{level}, level{level}: concat(@cls{level})"]
        return Written("", "", tuple(parts))
