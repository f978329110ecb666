"""Ultralytics model YAML -> one .cnn family, with widths and depths as `ultralytics.nn.tasks.parse_model`
computes them.

The YAML's `scales:` become the family's `depth`, `width` and `max_channels` and one network per scale; a width
c is written `ceil(min(c, max_channels) * width / 8) * 8` (make_divisible) and a repeat count n > 1
`max(round(n * depth), 1)`, both once per value as a `let`. Each row becomes one statement (a block call for
C2f, C3k2, SPPF, ...), labelled `l<index>` after the module it builds. Detect heads end at their raw maps."""

from __future__ import annotations

import re
from pathlib import Path

from .ultralytics_blocks import DETECT_BN, blocks_text
from .ultralytics_depth import DEPTH_NOTE
from .ultralytics_heads26 import NOTES26, decoding_both_task
from .ultralytics_rows import DETECTS, HEADS, Converter
from .ultralytics_rtdetr import RTDETR_NOTE
from .ultralytics_world import TEXT_HEADS, with_text
from .ultralytics_yaml import ModelYaml, read_yaml
from .ultralytics_yoloe import NOTES as YOLOE_NOTES
from .writing import Statement, body_lines, fold, identifier


def convert(text: str, file: str) -> str:
    """The .cnn text for an Ultralytics model YAML: one family, and one network per scale."""
    model = read_yaml(text, file)
    converter = Converter(model)
    rows = model.rows
    statements: list[Statement] = []
    outputs: list[str] = []
    out_widths: list[str] = []
    head_start = len(model.values["backbone"])
    for row in rows:
        if (row.module in HEADS) != (row.index == len(rows) - 1) and row.module in HEADS:
            raise row.error("is a head and must be the last row")
        inputs = [out_widths[source] for source in row.sources] if row.index else [str(model.values.get("ch", 3))]
        written = converter.row(row, inputs)
        out_widths.append(written.width)
        label = f"l{row.index}"  # every row's output is named after its module index
        jump = row.index and row.sources[0] != row.index - 1
        prefix = f"@l{row.sources[0]}, " if jump and not written.parts else ""  # parts jump themselves
        if row.module in DETECTS:
            heads = ("level", "one2one") if end_to_end(model) else ("level",)
            for head in heads:  # an end-to-end head has a second, one-to-one copy of every level's paths
                for level, source in enumerate(row.sources):
                    text = written.text  # every level's widths come from the first level's channels
                    statements.append(Statement(f"@l{source}, {head}{level}: {text}", row.index, row.index, None, True))
                    outputs.append(f"@{head}{level}")
            statements += _task_paths(converter, row, end_to_end(model))
            continue
        if row.module in TEXT_HEADS:  # WorldDetect, YOLOEDetect: its levels' statements (ultralytics_world)
            statements += [Statement(part, row.index, row.index, None, True) for part in written.parts]
            heads = ("level", "one2one") if end_to_end(model) else ("level",)  # YOLOE-26: the one-to-one copy's too
            outputs += [f"@{head}{level}" for head in heads for level in range(len(row.sources))]
            statements += _task_paths(converter, row, end_to_end(model))  # YOLOESegment's
            continue
        if row.module == "Depth":  # its statements end at its output, a head's, which is no module's tap
            statements += [Statement(part, row.index, row.index, None, True) for part in written.parts]
            continue
        for part in written.parts:
            statements.append(Statement(part, row.index, row.index, None, part == written.parts[0]))
        if row.module == "CBFuse":
            body = written.text
        elif row.module == "Concat":
            taps = ", ".join(f"@l{source}" for source in row.sources[1:])
            body = f"{prefix}concat({taps})"
        else:
            body = prefix + (f"({written.text})" if " x " in written.text else written.text)
        statements.append(Statement(body, row.index, row.index, label, bool(jump) or row.index == head_start))
    last = rows[-1].index  # the head's training-only modules (YOLO26's heads: ultralytics_heads26)
    statements += [Statement(part, last, last, None, True) for part in converter.training_parts]
    if converter.text_used:  # the class text the model holds, which C2fAttn and WorldDetect read
        statements = with_text(statements)
    return _text(model, converter, statements, outputs)


def _task_paths(converter: Converter, row, both: bool) -> list[Statement]:
    """Segment's, Pose's, OBB's cv4 path at every level (`both`: and its one-to-one copy), and Segment's protos."""
    statements = []
    if converter.extra:
        name, text = converter.extra
        for prefix in ("", "one2one_") if both else ("",):
            for level, source in enumerate(row.sources):
                extra = f"@l{source}, {prefix}{name}{level}: {text}"
                statements.append(Statement(extra, row.index, row.index, None, True))
    if converter.proto:
        for part in converter.proto_parts:  # Proto26: the later levels, refined, before the sum
            statements.append(Statement(part, row.index, row.index, None, True))
        statements.append(Statement(f"@l{row.sources[0]}, protos: {converter.proto}", row.index, row.index, None, True))
    return statements


def _text(model: ModelYaml, converter: Converter, statements: list[Statement], outputs: list[str]) -> str:
    scales = converter.scales
    name = _family(identifier(Path(model.file).stem), scales)
    values = model.values
    first = next(iter(scales.values()), None)
    if first:
        depth, width, most = first
        params = [f"depth={depth!r}", f"width={width!r}", f"max_channels={most!r}"]
    else:
        depth, width = values.get("depth_multiple", 1.0), values.get("width_multiple", 1.0)
        params = [f"depth={depth!r}", f"width={width!r}"]
    if converter.nc is not None and "classes" in " ".join(s.text for s in statements):
        params.append(f"classes={converter.nc!r}")
    c3k = converter.c3k_scales and any(scale in ("m", "l", "x") for scale in scales)
    if c3k:
        params.append("c3k=false")
    large = converter.a2_scales and converter.large_scales()
    if large:
        params.append("large=false")
    clamp = "min({}, max_channels)" if first else "{}"
    lets = [f"    let {let} = ceil({clamp.format(c)} * width / 8) * 8" for c, let in sorted(converter.widths.items())]
    counts = [f"let {let} = max(round({n} * depth), 1)" for n, let in sorted(converter.repeats.items())]
    for first_count in range(0, len(counts), 2):
        lets.append("    " + ", ".join(counts[first_count : first_count + 2]))
    classify = model.rows[-1].module == "Classify"
    size = 224 if classify else 640
    lines = [f"# Imported by `cnndsl import` from the Ultralytics model {Path(model.file).name}, as",
             "# ultralytics.nn.tasks.parse_model builds it: a width c is make_divisible(min(c, max_channels) * width,",
             "# 8), a repeat count n > 1 is max(round(n * depth), 1). Tap l<i> is module i's output (model.i)."]  # fmt: skip
    head = model.rows[-1].module
    obb = head in ("OBB", "OBB26")  # rotated boxes: no kind decodes them
    decoded = bool(outputs) and not obb
    if decoded:
        params.append('postprocess="decoded"')
        lines.append("# Detect ends as Ultralytics' eval output, boxes (cx, cy, w, h in input pixels) beside sigmoid")
        lines.append('# class scores for every anchor; postprocess="raw" gives the maps of its levels instead.')
        if end_to_end(model):
            lines += E2E_NOTE
        lines += TASK_NOTES.get(head, [])
    elif obb:
        lines += TASK_NOTES["OBB"]
        if end_to_end(model):
            lines.append(
                "# End-to-end: the one-to-one head's maps and angles (one2one...) follow the one-to-many head's."
            )
    elif outputs:
        lines.append("# Detect ends at its raw maps, per level the box distributions (4 x reg_max) beside the")
        lines.append("# class scores: DFL and box decoding are not imported.")
    if classify:
        lines.append("# Classify ends at its logits; Ultralytics' predictions are their softmax.")
    elif head == "SemanticSegment":
        lines += NOTES26[head]
    elif head == "Depth":
        lines += DEPTH_NOTE
    lines += RTDETR_NOTE * (head == "RTDETRDecoder")
    norm = "bn" if classify else DETECT_BN  # only DetectionModel's initialize_weights changes the norms
    lines += ["", *blocks_text(converter.used, converter.act_layer, converter.act, norm)]
    lines += [*(text.replace("BN", norm) for text in converter.torchvision_blocks.values()), ""]  # TorchVision's
    lines.append(f"network {name}({', '.join(params)}) {{")
    lines.append(
        f"    {'image: ' * (decoded or bool(converter.prompt_masks))}input {values.get('ch', 3)}x{size}x{size}"
    )
    if converter.prompt_masks:  # YOLOE's visual prompts: a mask each, at the first level's size (stride 8)
        lines += [f"    prompts: input {converter.prompt_masks}x{size // 8}x{size // 8}"]
    lines += [f"    {declared}" for declared in converter.train_inputs]
    lines += ["    @image"] * bool(converter.prompt_masks or converter.train_inputs)
    lines += lets
    lines += body_lines(fold(statements), "modules")
    extras = (
        [f"@{converter.extra[0]}{level}" for level in range(len(model.rows[-1].sources))] if converter.extra else []
    )
    if obb:
        extras += [f"@one2one_{extra[1:]}" for extra in extras] if end_to_end(model) else []
        lines.append(f"    output {', '.join(outputs + extras)}")
    elif decoded and extras and end_to_end(model):  # Segment26, Pose26, or Segment and Pose under end2end
        dims, centred = converter.keypoint_dims, converter.centred_keypoints
        kpt = None if converter.proto else ", dims=2" * (dims == 2) + ", centred=true" * centred
        lines += decoding_both_task(outputs, extras, values.get("reg_max", 16), bool(converter.proto), kpt)
    elif decoded and extras:
        reg_max, dims = values.get("reg_max", 16), converter.keypoint_dims
        lines += _decoding_task(outputs, extras, reg_max, bool(converter.proto), dims)
    elif decoded and end_to_end(model):
        lines += _decoding_both(outputs, values.get("reg_max", 16))
    elif decoded:
        reg_max, levels = values.get("reg_max", 16), ", ".join(outputs)
        lines.append(f'    if postprocess == "raw" {{ output {levels} }}')
        lines.append(
            f"    else {{ {outputs[0]}, anchorcat({', '.join(outputs[1:])}), dfl({reg_max}), dist2bbox(@image, {levels}) }}"
        )
    elif outputs:
        lines.append(f"    output {', '.join(outputs)}")
    if converter.train_outputs:  # a head row's own output is the eval output (SemanticSegment)
        lines += [f"    output @l{model.rows[-1].index}"] * (not outputs)
        lines.append(f"    train output {', '.join(converter.train_outputs)}")
    lines.append("}")
    if scales:
        lines.append("")
    for scale, (depth, width, most) in scales.items():
        extra = ", c3k=true" if c3k and scale in ("m", "l", "x") else ""
        extra += ", large=true" if large and scale in ("l", "x") else ""
        lines.append(f"network {_scaled(name, str(scale))} = {name}({depth!r}, {width!r}, {most!r}{extra})")
    return "\n".join(lines) + "\n"


E2E_NOTE = [
    "# End-to-end: the one-to-one head's boxes are the second output, corners (x1, y1, x2, y2) beside the",
    "# scores, where Ultralytics (end2end=True) then keeps the max_det best (score, class) pairs: that top-k",
    "# is not imported. The first output is the one-to-many head's, its default (end2end=False).",
]


def end_to_end(model: ModelYaml) -> bool:
    """Whether the head has a one-to-one copy: v10Detect, or Detect under `end2end: True` (YOLO26)."""
    return model.rows[-1].module == "v10Detect" or (
        model.rows[-1].module in DETECTS | TEXT_HEADS and bool(model.values.get("end2end"))
    )


def _decoding_both(outputs: list[str], reg_max: int) -> list[str]:
    """Both heads' levels laid side by side through one DFL (Ultralytics has one), then each half decoded."""
    many = outputs[: len(outputs) // 2]
    bins = f"dfl({reg_max})" if reg_max > 1 else "identity"  # reg_max 1: Ultralytics' DFL is nn.Identity
    taps = ", ".join(many)
    return [
        f'    if postprocess == "raw" {{ output {", ".join(outputs)} }}',
        "    else {",
        f"        {outputs[0]}, anchorcat({', '.join(outputs[1:])}), bins: {bins}",
        f"        chunk(2, 0, axis=1), many: dist2bbox(@image, {taps})",
        f"        @bins, chunk(2, 1, axis=1), one: dist2bbox(@image, {taps}, xyxy=true)",
        "        output @many, @one",
        "    }",
    ]


def _family(stem: str, scales: dict) -> str:
    """The family's name: the file's, less the scale where the file names its one scale (yolov10n.yaml: yolov10,
    rtdetr-l.yaml: rtdetr)."""
    found = re.match(r"(yolo(?:e_)?v?\d+)(.*)", stem)
    if found and list(scales) == [found.group(2)]:
        return found.group(1)
    return stem[: -len(scale) - 1] if len(scales) == 1 and stem.endswith(f"_{(scale := next(iter(scales)))}") else stem


TASK_NOTES = {
    "Segment": [
        "# Segment: the detections carry each anchor's 32 mask coefficients after the scores, as Ultralytics';",
        "# the second output is the mask prototypes (Proto).",
    ],
    "Pose": ["# Pose: the detections carry each anchor's keypoints in pixels (x, y, visibility) after the scores."],
    "OBB": [
        "# OBB ends at its raw maps, per level the box distributions beside the class scores, then every",
        "# level's angle logits: the rotated boxes' decoding (DFL where reg_max > 1, dist2rbox) is not imported.",
    ],
}


TASK_NOTES.update(NOTES26)
TASK_NOTES.update(
    YOLOE_NOTES,
    YOLOESegment=TASK_NOTES["Segment"] + YOLOE_NOTES["YOLOEDetect"],
    YOLOESegment26=TASK_NOTES["Segment26"] + YOLOE_NOTES["YOLOEDetect"],
)


def _decoding_task(outputs: list[str], extras: list[str], reg_max: int, protos: bool, dims: int) -> list[str]:
    """Segment's and Pose's end, Ultralytics' own: the boxes and scores as Detect's, then their own rows."""
    name = extras[0][1:-1]  # @mask0 -> mask
    levels, rest = ", ".join(outputs), ", ".join(extras[1:])
    raw = ", ".join(outputs + extras + ["@protos"] * protos)
    joined = f"{extras[0]}, {name}s: anchorcat({rest})"
    if not protos:  # Pose: the keypoints in pixels, as Pose.kpts_decode
        joined = f"{extras[0]}, anchorcat({rest}), {name}s: kptdecode(@image, {levels}{', dims=2' * (dims == 2)})"
    return [
        f'    if postprocess == "raw" {{ output {raw} }}',
        "    else {",
        f"        {outputs[0]}, anchorcat({', '.join(outputs[1:])}), dfl({reg_max}), boxes: dist2bbox(@image, {levels})",
        f"        {joined}",
        f"        @boxes, detections: concat(@{name}s)",
        f"        output @detections{', @protos' * protos}",
        "    }",
    ]


def _scaled(name: str, scale: str) -> str:
    """yolov8 + n -> yolov8n, yolov8_cls + n -> yolov8n_cls, as Ultralytics names the scaled files."""
    found = re.match(r"(yolo(?:e_)?v?\d+)(.*)", name)
    return f"{found.group(1)}{scale}{found.group(2)}" if found else f"{name}_{scale}"


def network_names(cnn: str) -> list[str]:
    """The imported file's network per scale, or its one network where the YAML has no scales."""
    scaled = re.findall(r"^network (\w+) = ", cnn, re.MULTILINE)
    return scaled or re.findall(r"^network (\w+)\(", cnn, re.MULTILINE)
