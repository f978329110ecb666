"""YOLOE's heads (YOLOEDetect and YOLOESegment, Wang et al. 2025), mixed into the row converter.

YOLOEModel.predict(x, tpe=..., vpe=...) hands its head the class prompts `cls_pe`: the text prompts through the
head's `reprta` (a residual SwiGLU FFN) and made unit length, then the visual prompts' embeddings, which SAVPE
computes from the three levels and one mask per prompt, drawn at the first level's resolution. The import holds
the text as YOLO-World's does (`text: textembed(classes)`, the checkpoint's `txt_feats`: the CLIP embeddings
before reprta) and takes the masks as the network's second input, `prompts` (PROMPTS of them, 1/8 of the image's
side). SAVPE's convolutions that run once per prompt are written once and `shared` by the others, so its
parameters are counted once, as Ultralytics counts them; its end is `promptpool`. The class scores are the text
classes' then the prompts', as `cls_pe` lays them out: `classes` is the text's count (the YAML's nc, which also
sets the class path's width), and the head scores classes + PROMPTS.

Under `end2end` (YOLOE-26) every level's box, class and contrast paths have a one-to-one copy, as YOLO26's
Detect. The prompt-free variant (`lrpc`, LRPCHead) is not what the YAML builds: Ultralytics fuses it into a trained
model later (`YOLOEModel.set_vocab`), so it is not imported.
"""

from __future__ import annotations

from .ultralytics_blocks import BLOCKS, DETECT_BN
from .ultralytics_more import Written, padded

PROMPTS = 4  # visual prompts: the masks of `prompts: input 4×(H/8)×(W/8)`
SAVPE_GROUPS = 16  # SAVPE.c: the score's channels, each weighting embed/16 of the embedding's
FFN_EXPANSION = 4  # SwiGLUFFN's e

BLOCKS["yoloe_embed_dw"] = (  # YOLOEDetect's class path where Detect.legacy is false (C3k2, C2fCIB, A2C2f)
    """block yoloe_embed_dw(ch0, classes, embed=512) {  # YOLOEDetect's depthwise class path: an embedding per pixel
    let c3 = max(ch0, min(classes, 100))
    conv_bn_ACT(in.c, 3, g=in.c), conv_bn_ACT(c3), conv_bn_ACT(c3, 3, g=c3), conv_bn_ACT(c3), conv(embed, k=1)
}""",
    ("conv_bn_ACT",),
)


PROMPT_NOTE = [
    f"# YOLOE: the class text is held (txt_feats: CLIP's, before reprta); `prompts` holds {PROMPTS} visual prompt",
    "# masks at 1/8 of the image's side. The scores are the text's `classes`, then the prompts'.",
]
NOTES = {"YOLOEDetect": PROMPT_NOTE}


class YoloeModules:
    """The handler `m_YOLOEDetect` for the converter; it uses its classes(), used, conv, legacy and act_layer."""

    prompt_masks: int = 0  # the prompts input's channels, where the head reads visual prompts

    def m_YOLOESegment(self, row, args, inputs):
        """YOLOEDetect with Segment's mask coefficients at every level (its cv5) and its prototypes."""
        classes, masks, protos, embed, with_bn = padded(row, args, [None, 32, 256, 512, True], "YOLOESegment")
        if isinstance(masks, bool) or not isinstance(masks, int) or masks < 1:
            raise row.error(f"takes a whole number of masks, not `{masks!r}`")
        self.used.update(("extra_level", "proto"))
        self.extra = ("mask", f"extra_level({inputs[0]}, {masks})")  # c5 = max(ch0 // 4, nm), as Segment's c4
        self.proto = f"proto({self.width(row, protos)}, {masks})"  # parse_model scales npr as a width
        return self.m_YOLOEDetect(row, [classes, embed, with_bn], inputs)

    def m_YOLOESegment26(self, row, args, inputs):
        """YOLOESegment with Proto26, as Segment26 (YOLOE-26: its mask path has a one-to-one copy too)."""
        written = self.m_YOLOESegment(row, args, inputs)
        _, masks, protos, _, _ = padded(row, args, [None, 32, 256, 512, True], "YOLOESegment26")
        self.proto26(row, args, inputs, masks, protos)
        return written

    def m_YOLOEDetect(self, row, args, inputs):
        """Detect's box path, an embedding path per level, both prompts' embeddings, and each level's pixels
        compared with them (BNContrastiveHead)."""
        classes, embed, with_bn = padded(row, args, [None, 512, True], "YOLOEDetect")
        self._text_dims(row, embed, "embed")
        if with_bn is not True:
            raise row.error("takes with_bn true (YOLOEDetect asserts it)")
        if len(row.sources) != 3:
            raise row.error(f"reads three levels (SAVPE joins P3, P4 and P5), not {len(row.sources)}")
        self.text_used = True
        self.prompt_masks = PROMPTS
        count = self.classes(row, classes)
        reg_max = self.model.values.get("reg_max", 16)
        embedding = "world_embed" if self.legacy else "yoloe_embed_dw"
        self.used.update(("world_box", embedding, "conv_bn_ACT"))
        box = f"world_box({inputs[0]}{f', {reg_max}' * (reg_max != 16)})"
        parts = [f"let c3 = max({inputs[0]}, min({count}, 100))", *_reprta(), *self._savpe(row, "c3")]
        copies = ("", "one2one_") if self.model.values.get("end2end") else ("",)  # YOLOE-26: a one-to-one copy
        for copy in copies:
            for level, source in enumerate(row.sources):
                embedded = f"{embedding}({inputs[0]}, {count})"
                parts += [f"@l{source}, {copy}box{level}: {box}", f"@l{source}, {copy}embed{level}: {embedded}"]
        contrast = f"{DETECT_BN}, contrast(@pe, normalize=false)"
        for copy in copies:
            for level in range(len(row.sources)):
                joined = f"{copy}level{level}" if copy else f"level{level}"
                parts += [
                    f"@{copy}embed{level}, {copy}cls{level}: ({contrast})",
                    f"@{copy}box{level}, {joined.replace('one2one_level', 'one2one')}: concat(@{copy}cls{level})",
                ]
        return Written("", "", tuple(parts))

    def _savpe(self, row, c3: str) -> list[str]:
        """SAVPE: an embedding map and a score map from the three levels (each brought to the first's size),
        then per prompt the score refined with its mask and the embedding pooled over it; the text's and the
        prompts' embeddings joined as `pe`, a class each."""
        conv, act = self.conv, self.act_layer
        parts = []
        for name, path in (("e", f"{conv}({c3}, 3), {conv}({c3}, 3)"), ("s", f"{conv}({c3})")):
            for level, source in enumerate(row.sources):  # SAVPE's cv1, then its cv2
                up = f"upsample({2 * level})" if level else "identity"
                parts.append(f"@l{source}, {path}, savpe_{name}{level}: {up}")
        parts += [
            "@savpe_e0, concat(@savpe_e1, @savpe_e2), savpe_embed: conv(512, k=1)",
            f"@savpe_s0, concat(@savpe_s1, @savpe_s2), savpe_score: conv({SAVPE_GROUPS}, k=3)",
        ]
        for prompt in range(PROMPTS):
            mask = f"@prompts, prompt{prompt}: chunk({PROMPTS}, {prompt})"
            pooled = f"vp{prompt}: promptpool(@savpe_embed, @prompt{prompt})"
            if prompt == 0:  # cv5 and cv6, written once
                parts += [
                    f"{mask}, savpe_mask0: conv({SAVPE_GROUPS}, k=3)",
                    f"@savpe_score, concat(@savpe_mask0), savpe_conv: conv({SAVPE_GROUPS}, k=3, bias=false)",
                    f"savpe_bn: {DETECT_BN}, {act}, savpe_out: conv({SAVPE_GROUPS}, k=3), {pooled}",
                ]
            else:
                parts += [
                    f"{mask}, savpe_mask{prompt}: shared(@savpe_mask0)",
                    f"@savpe_score, concat(@savpe_mask{prompt}), shared(@savpe_conv), shared(@savpe_bn), {act}",
                    f"shared(@savpe_out), {pooled}",
                ]
        others = ", ".join(f"@vp{prompt}" for prompt in range(1, PROMPTS))
        return [*parts, f"@vp0, concat({others}, axis=1), vpe: identity", "@tpe, pe: concat(@vpe, axis=1)"]


def _reprta() -> list[str]:
    """reprta, Residual(SwiGLUFFN(512, 512)) on each class's text: w12, silu of one half times the other, w3,
    plus the text. (Its F.normalize is left to `contrast`, which makes every class's embedding unit length.)"""
    return [
        f"@text, ffn: fc({FFN_EXPANSION * 512}, pixelwise=true)",
        "@ffn, chunk(2, 1), gate: identity",
        "@ffn, chunk(2, 0), silu, mul(@gate), fc(512, pixelwise=true), tpe: add(@text)",
    ]
