"""YOLO26's segment, pose and semantic heads (ultralytics/nn/modules/head.py: Segment26, Pose26,
SemanticSegment), and the end of an end-to-end segment or pose head (these, or Segment and Pose under
`end2end: True`): both heads decoded as Detect's, each followed by its mask coefficients or keypoints.

Segment26 is Segment whose prototypes (Proto26) read every level: each level after the first is brought to
the first's width by a 1x1 Conv, resized nearest by 2, 4, ... and added to it, then a 3x3 Conv and Proto.
Pose26's keypoint path is two 3x3 Conv as wide as `max(ch0 / 4, keypoints * (dims + 2))` and a 1x1
convolution, its keypoints decoded as offsets from the anchor's centre (`kptdecode(centred=true)`).

The modules only training runs are written as they compute, after the head, and returned by `train output`
(docs/language.md): Proto26's semantic head (`proto.semseg`, on the sum of the levels), Pose26's keypoint
sigmas (`cv4_sigma`, on each level's keypoint features) and SemanticSegment's `aux_head` (on its second
level). Pose26's RealNVP flow model (`flow_model`) reads a tensor the loss makes from the labels, each
matched keypoint's error over its sigma, so that tensor is a `train input` (`keypoint_errors`, N x 2) and the
flow (`realnvp`) a training-only layer on it, its log-density a train output."""

from __future__ import annotations

from .ultralytics_blocks import BLOCKS
from .ultralytics_more import Written, padded

FLOW_INPUT = "keypoint_errors"  # the `train input` Pose26's flow model reads, a tensor the loss makes
FLOW_NOTE = [
    "# Pose26's RealNVP flow model (flow_model) is `flow: realnvp(6, 64)`, on the train input `keypoint_errors` (N x 2):",
    "# each matched keypoint's (predicted - true) / sigma, which the loss makes from the labels and the eval forward",
    "# never takes. Its log-density is the train output `flow`; the loss's own call is `net.realnvp.log_prob(errors)`.",
]

NOTES26 = {  # the imported file's header for each head
    "Segment26": [
        "# Segment26: the detections carry each anchor's 32 mask coefficients after the scores; the last output",
        "# is the mask prototypes (Proto26: every level brought to the first's width and size, summed). Proto26's",
        "# semantic head (proto.semseg) serves the training loss only: a train output (`semantic`).",
    ],
    "Pose26": [
        "# Pose26: the detections carry each anchor's keypoints in pixels, (offset + anchor centre) * stride, and",
        "# visibility; the keypoint sigmas (cv4_sigma) serve the training loss only: train outputs (`sigma<i>`).",
        *FLOW_NOTE,
    ],
    "SemanticSegment": [
        "# SemanticSegment ends at its class logits per pixel of its first level (1/8 of the input), as Ultralytics'",
        "# eval output; its auxiliary head on the second level (aux_head) serves the training loss only: a train",
        "# output (`aux`).",
    ],
}

BLOCKS["pose26_level"] = (
    """block pose26_level(ch0, keypoints, dims) {  # a level's keypoints (Pose26: cv4, then cv4_kpts)
    let c4 = max(ch0 // 4, keypoints * (dims + 2))
    conv_bn_ACT(c4, 3), features: conv_bn_ACT(c4, 3), conv(keypoints * dims, k=1)
}""",
    ("conv_bn_ACT",),
)
BLOCKS["semantic_head"] = (
    "block semantic_head(classes) { conv_bn_ACT(in.c, 3), conv(classes, k=1) }  # SemanticSegment's classifier",
    ("conv_bn_ACT",),
)


class Heads26:
    """`m_Segment26` and `m_Pose26` for the row converter: Segment's and Pose's handlers (their checks, Detect's
    levels), then Proto26 (`proto_parts`, `proto`) or Pose26's keypoint path (`extra`) in their place."""

    def m_Segment26(self, row, args, inputs):
        written = self.m_Segment(row, args, inputs)
        _, masks, protos = padded(row, args, [None, 32, 256], "Segment26")
        self.proto26(row, args, inputs, masks, protos)
        return written

    def proto26(self, row, args, inputs, masks, protos) -> None:
        """Proto26 (Segment26's, YOLOESegment26's): every later level brought to the first's width and size and
        added to it before Proto's layers; its semantic head (`semseg`, on the sum) a training output."""
        width = self.width(row, protos)  # Proto26's c_, scaled as parse_model scales npr
        first = f"({inputs[0]})" if " " in inputs[0] else inputs[0]
        self.proto_parts = tuple(  # each later level at the first's width and size
            f"@l{source}, {self.conv}({first}), proto_level{level}: upsample({2**level})"
            for level, source in enumerate(row.sources[1:], 1)
        )
        refined = ", ".join(f"@proto_level{level}" for level in range(1, len(row.sources)))
        added = f"summed: add({refined}), " if refined else ""
        self.proto = f"({added}{self.conv}({width}, 3), proto({width}, {masks}))"
        summed = "@summed" if refined else f"@l{row.sources[0]}"  # Proto26's `feat`, which semseg reads
        classes = self.classes(row, args[0])  # Segment26 hands Proto26 its nc
        self.training_parts = (  # Proto26.semseg: Conv(ch0, c_, 3), Conv(c_, c_, 3), Conv2d(c_, nc, 1)
            f"{summed}, semantic: ({self.conv}({width}, 3), {self.conv}({width}, 3), conv({classes}, k=1))",
        )
        self.train_outputs = ("@semantic",)

    def m_SemanticSegment(self, row, args, inputs):
        """The classifier on the first level it reads; the second level feeds only the training-only aux_head."""
        (classes,) = padded(row, args, [None], "SemanticSegment")
        self.used.add("semantic_head")
        if len(row.sources) > 1:  # aux_head: Conv(ch1, ch0, 3), Conv2d(ch0, nc, 1) on the second level
            aux = f"{self.conv}({inputs[0]}, 3), conv({self.classes(row, classes)}, k=1)"
            self.training_parts = (f"@l{row.sources[1]}, aux: ({aux})",)
            self.train_outputs = ("@aux",)
        return Written(f"semantic_head({self.classes(row, classes)})", self.classes(row, classes))

    def m_Pose26(self, row, args, inputs):
        written = self.m_Pose(row, args, inputs)
        shape = args[1] if len(args) > 1 and args[1] != "kpt_shape" else self.model.values.get("kpt_shape", [17, 3])
        self.used.discard("extra_level")  # Pose's keypoint path, which pose26_level replaces
        self.used.add("pose26_level")
        self.extra = ("keypoint", f"pose26_level({inputs[0]}, {shape[0]}, {shape[1]})")
        self.centred_keypoints = True
        heads = ("", "one2one_") if self.model.values.get("end2end") else ("",)
        sigmas = [f"{head}sigma{level}" for head in heads for level in range(len(row.sources))]
        self.training_parts = tuple(  # cv4_sigma: Conv2d(c4, 2 * keypoints, 1) on each level's keypoint features
            f"@{sigma.replace('sigma', 'keypoint')}.features, {sigma}: conv({2 * shape[0]}, k=1)" for sigma in sigmas
        )
        self.train_inputs = (f"{FLOW_INPUT}: train input 2  # each matched keypoint's (predicted - true) / sigma",)
        self.training_parts += (f"@{FLOW_INPUT}, flow: realnvp(6, 64)",)  # flow_model: its log_prob, per row
        self.train_outputs = (*(f"@{sigma}" for sigma in sigmas), "@flow")
        return written


def decoding_both_task(outputs: list[str], extras: list[str], reg_max: int, protos: bool, kpt: str | None) -> list[str]:
    """An end-to-end Segment's or Pose's end: each head's boxes as Detect's (the one-to-one head's corners),
    then that head's mask coefficients, or keypoints (`kpt`: kptdecode's options after its taps); the
    prototypes, which both heads share, last."""
    name = extras[0][1:-1]  # @mask0 -> mask
    taps = ", ".join(outputs[: len(outputs) // 2])
    bins = f"dfl({reg_max})" if reg_max > 1 else "identity"  # reg_max 1: Ultralytics' DFL is nn.Identity
    raw = [*outputs, *extras, *(f"@one2one_{extra[1:]}" for extra in extras)] + ["@protos"] * protos
    lines = [
        f'    if postprocess == "raw" {{ output {", ".join(raw)} }}',
        "    else {",
        f"        {outputs[0]}, anchorcat({', '.join(outputs[1:])}), bins: {bins}",
        f"        chunk(2, 0, axis=1), boxes: dist2bbox(@image, {taps})",
        f"        @bins, chunk(2, 1, axis=1), one2one_boxes: dist2bbox(@image, {taps}, xyxy=true)",
    ]
    for head in ("", "one2one_"):
        first, rest = f"@{head}{extras[0][1:]}", ", ".join(f"@{head}{extra[1:]}" for extra in extras[1:])
        if kpt is None:
            lines.append(f"        {first}, {head}{name}s: anchorcat({rest})")
        else:
            lines.append(f"        {first}, anchorcat({rest}), {head}{name}s: kptdecode(@image, {taps}{kpt})")
        lines.append(f"        @{head}boxes, {head}detections: concat(@{head}{name}s)")
    lines += [f"        output @detections, @one2one_detections{', @protos' * protos}", "    }"]
    return lines
