"""Faster R-CNN's two selections (Ren et al. 2015, as torchvision computes them), with static shapes.

`levelnms` is the RPN's `filter_proposals` after its per-level top-k: small boxes (`min_size`) and low scores
(`score`) removed, `batched_nms` by level, the best `k` (`post_nms_top_n`) kept. `roidetections` is the RoI
head's `postprocess_detections`: softmax, a box per class (BoxCoder, weights 10, 10, 5, 5), clipped, the
background left out, scores not above `score` and small boxes removed, NMS per class, `detections_per_img`.

How many boxes survive depends on the image, but the shapes do not: a removed box is never a candidate of
the NMS (its score becomes -inf, which onnxruntime's NonMaxSuppression with the score threshold -FLT_MAX never
selects, and which the torch function never gathers), so it is neither kept nor suppresses another, exactly as
where torchvision drops it first. The kept boxes fill the first rows, by falling score; the rest are padding:
zero boxes after `levelnms` and rows (0, 0, 0, 0, score 0, label -1) after `roidetections`. A zero proposal
decodes to zero boxes (its width and height multiply every delta), which `roidetections` removes as small
(its min_size must be positive), so padding proposals never become detections. The two differ from
torchvision only where two scores tie exactly (the lower index goes first here) or an IoU lies within float
rounding of the threshold (torchvision's coordinate-offset trick rounds differently).
"""

from __future__ import annotations

from ..core.errors import ShapeProblem, ValueProblem
from ..front.evaluate import shown
from .base import OpKind, format_shape, fraction, real, register, whole
from .boxes import CLAMP, onnx_decode
from .nms import _float_tensor, _slice, _unsqueeze, padded_rows
from .tensors import Example
from .torch_code import Arg, Call, Listed

LOWEST = -3.4028234663852886e38  # -FLT_MAX: NonMaxSuppression's score threshold, above -inf and below every score
BEFORE_LEVELS = (  # two levels of boxes and their scores, joined
    "scores: conv(2, s=2), b: anchors(@in, sizes=[4], ratios=[0.5, 2]), near: topk(4, @scores), @b, "
    "far: topk(3, @scores), @scores, topk(4), s1: sigmoid, @scores, topk(3), s2: sigmoid, @near, concat(@far, axis=0), relu"
)


@register
class LevelNms(OpKind):
    name = "levelnms"
    family = "reshape"
    takes_taps = True
    signature = (("iou", 0.7), ("k", 1000), ("score", 0.0), ("min_size", 1e-3))
    doc = (
        "levelnms(@scores1, @scores2, ..., iou=0.7, k=1000, score=0.0, min_size=1e-3) on K×4 boxes: the RPN's "
        "proposals as torchvision's filter_proposals, a scores tap a level: boxes thinner than min_size and "
        "scores below score removed, NMS within each level, the best k (post_nms_top_n); k×4, zero boxes after"
    )
    example = Example(
        "levelnms(@s1, @s2, iou=0.5, k=6)",
        (4, 8, 8),
        before=BEFORE_LEVELS,
    )

    def resolve(self, attrs, inputs):
        boxes = inputs[0]
        if len(boxes) != 2 or boxes[1] != 4:
            raise ShapeProblem(f"`levelnms` follows K×4 boxes (x1, y1, x2, y2), got {format_shape(boxes)}")
        levels = inputs[1:]
        if not levels or any(len(shape) != 1 for shape in levels):
            raise ShapeProblem(
                "`levelnms` takes the scores of each level as taps, K₁, K₂, … values, got "
                + (", ".join(format_shape(shape) for shape in levels) or "none"),
                hint="levelnms(@scores1, @scores2) after the levels' boxes joined by concat(..., axis=0)",
            )
        if sum(shape[0] for shape in levels) != boxes[0]:
            raise ShapeProblem(
                f"`levelnms` has {' + '.join(str(shape[0]) for shape in levels)} scores for {boxes[0]} boxes",
                hint="give each level's scores in the order its boxes were joined",
            )
        return {
            "iou": fraction(attrs["iou"], "iou"),
            "k": min(whole(attrs["k"], "k"), boxes[0]),
            "score": real(attrs["score"], "the score threshold"),
            "min_size": real(attrs["min_size"], "min_size"),
            "levels": tuple(shape[0] for shape in levels),
        }

    def shape(self, attrs, inputs):
        return (attrs["k"], 4)

    def label(self, attrs):
        return f"nms by level, iou {attrs['iou']:g}, ≤{attrs['k']} proposals"

    def data_dependent(self, attrs) -> str | None:
        return f"at most {attrs['k']} proposals kept; how many depends on the image (the other rows: zero boxes)"

    def torch_forward(self, attrs, inputs):
        scores = Listed(tuple(Arg(index) for index in range(1, len(inputs))))
        options = tuple((key, attrs[key]) for key in ("iou", "score", "min_size", "k"))
        return Call("", "level_nms", (Arg(0), scores), options)

    def onnx(self, attrs, inputs, args, emit):
        emit.require(12, "`levelnms` (ONNX GreaterOrEqual)")
        boxes = args[0]
        joined = args[1] if len(args) == 2 else emit.op("Concat", args[1:], axis=1)  # N × K
        scores = _unsqueeze(emit, joined, 2)  # N × K × 1, beside the boxes' columns
        valid = emit.op("GreaterOrEqual", [scores, emit.floats("score", attrs["score"])])
        masked = _masked(emit, boxes, scores, valid, attrs["min_size"], axis=2)
        count = inputs[0][0]
        offsets, first = [], 0  # a level's boxes keep their score in its row, -inf in the others
        for size in attrs["levels"]:
            offsets.append([0.0 if first <= index < first + size else float("-inf") for index in range(count)])
            first += size
        by_level = emit.op("Add", [emit.op("Transpose", [masked], perm=(0, 2, 1)), emit.floats("levels", offsets)])
        selected = _selected(emit, boxes, by_level, attrs["k"], attrs["iou"])
        place = emit.op("Gather", [selected, emit.ints("image_box", (0, 2))], axis=1)
        flat = _scattered(emit, joined, place, emit.op("GatherND", [by_level, selected]))  # N × K
        best, index = _top(emit, flat, attrs["k"])
        picked = emit.op("GatherElements", [boxes, _spread(emit, index)], axis=1)
        found = _unsqueeze(emit, emit.op("Greater", [best, emit.floats("none", LOWEST)]), 2)
        return emit.op("Where", [found, picked, emit.floats("zero", 0.0)])


@register
class RoiDetections(OpKind):
    name = "roidetections"
    family = "reshape"
    takes_taps = True
    signature = (
        ("weights", (10.0, 10.0, 5.0, 5.0)),
        ("clamp", CLAMP),
        ("score", 0.05),
        ("iou", 0.5),
        ("max_det", 100),
        ("min_size", 1e-2),
    )
    doc = (
        "roidetections(@deltas, @proposals, @image, weights=[10, 10, 5, 5], clamp=log(1000/16), score=0.05, iou=0.5, max_det=100, "
        "min_size=1e-2) on K×classes logits: torchvision's RoI head postprocess, max_det×6 rows (x1, y1, x2, "
        "y2, score, label) by falling score, padded with score 0, label -1"
    )
    example = Example(
        "roidetections(@deltas, @boxes, @in, score=0.1, max_det=5)",
        (4, 8, 8),
        before="conv(2, s=2), boxes: anchors(@in, sizes=[4], ratios=[1]), deltas: boxfc(12), @boxes, boxfc(3)",
    )

    def resolve(self, attrs, inputs):
        logits = inputs[0]
        if len(logits) != 2 or logits[1] < 2:
            raise ShapeProblem(
                f"`roidetections` follows K×classes logits (the background first), got {format_shape(logits)}"
            )
        if len(inputs) != 4:
            raise ValueProblem(
                f"`roidetections` takes three taps, the deltas, the proposals and the image; got {len(inputs) - 1}",
                hint="roidetections(@deltas, @proposals, @image)",
            )
        count, classes = logits
        for shape, wanted, what in ((inputs[1], (count, 4 * classes), "deltas"), (inputs[2], (count, 4), "proposals")):
            if tuple(shape) != wanted:
                raise ShapeProblem(
                    f"`roidetections` needs {what} of {format_shape(wanted)} for {format_shape(logits)} logits, "
                    f"got {format_shape(shape)}"
                )
        if len(inputs[3]) != 3:
            raise ShapeProblem(f"`roidetections` clips to a C×H×W image, got {format_shape(inputs[3])}")
        weights = attrs["weights"]
        if not isinstance(weights, (list, tuple)) or len(weights) != 4:
            raise ValueProblem(f"the box weights are four numbers (x, y, w, h), got {shown(weights)}")
        min_size = real(attrs["min_size"], "min_size")
        if min_size <= 0:
            raise ValueProblem(
                f"`roidetections`'s min_size must be positive, got {shown(attrs['min_size'])}",
                hint="padding proposals are zero boxes, which it drops as small boxes (torchvision's is 1e-2)",
            )
        return {
            "weights": tuple(real(weight, "a box weight", positive=True) for weight in weights),
            "clamp": real(attrs["clamp"], "the clamp"),
            "score": real(attrs["score"], "the score threshold"),
            "iou": fraction(attrs["iou"], "iou"),
            "max_det": whole(attrs["max_det"], "max_det"),
            "min_size": min_size,
            "size": tuple(inputs[3][1:]),
        }

    def shape(self, attrs, inputs):
        return (attrs["max_det"], 6)

    def label(self, attrs):
        return f"detections: nms iou {attrs['iou']:g}, ≤{attrs['max_det']} boxes"

    def data_dependent(self, attrs) -> str | None:
        return (
            f"at most {attrs['max_det']} boxes kept; how many depends on the image (the other rows: score 0, label -1)"
        )

    def torch_forward(self, attrs, inputs):
        names = {"min_size": "small", "max_det": "top"}  # the torch function's shorter keywords
        keys = ("size", "weights", "clamp", "score", "min_size", "iou", "max_det")
        options = tuple((names.get(key, key), attrs[key]) for key in keys)
        return Call("", "roi_detections", (Arg(0), Arg(1), Arg(2)), options)

    def onnx(self, attrs, inputs, args, emit):
        emit.require(12, "`roidetections` (ONNX GreaterOrEqual)")
        count, classes = inputs[0]
        kinds = classes - 1  # the background left out
        probabilities = _slice(emit, emit.op("Softmax", [args[0]], axis=2), 1, classes, 2)  # N × K × kinds
        deltas = emit.op("Reshape", [args[1], emit.ints("per_class", (0, count, classes, 4))])
        proposals = emit.op("Reshape", [args[2], emit.ints("per_class", (0, count, 1, 4))])
        boxes = onnx_decode(emit, deltas, proposals, attrs["weights"], attrs["clamp"], axis=3)
        height, width = attrs["size"]
        boxes = emit.op("Min", [emit.op("Max", [boxes, emit.floats("zero", 0.0)]),
                                emit.floats("size", [width, height, width, height])])  # fmt: skip
        boxes = _slice(emit, boxes, 1, classes, 2)  # N × K × kinds × 4
        scores = _unsqueeze(emit, probabilities, 3)
        valid = emit.op("Greater", [scores, emit.floats("score", attrs["score"])])
        masked = _masked(emit, boxes, scores, valid, attrs["min_size"], axis=3)  # N × K × kinds × 1
        # one NonMaxSuppression batch a class (image by image): each class has its own boxes
        by_class = emit.op(
            "Reshape", [emit.op("Transpose", [masked], perm=(0, 2, 3, 1)), emit.ints("b", (-1, 1, count))]
        )
        class_boxes = emit.op("Transpose", [boxes], perm=(0, 2, 1, 3))
        class_boxes = emit.op("Reshape", [class_boxes, emit.ints("b", (-1, count, 4))])
        selected = _selected(emit, class_boxes, by_class, attrs["max_det"], attrs["iou"])
        marked = _scattered(emit, by_class, selected, emit.op("GatherND", [by_class, selected]))
        marked = emit.op("Reshape", [marked, emit.ints("class_box", (-1, kinds, count))])
        flat = emit.op("Reshape", [emit.op("Transpose", [marked], perm=(0, 2, 1)), emit.ints("f", (0, count * kinds))])
        keep = min(attrs["max_det"], count * kinds)
        best, index = _top(emit, flat, keep)
        all_boxes = emit.op("Reshape", [boxes, emit.ints("f", (0, count * kinds, 4))])
        picked = emit.op("GatherElements", [all_boxes, _spread(emit, index)], axis=1)
        label = emit.op("Add", [emit.op("Mod", [index, emit.ints("kinds", kinds)]), emit.ints("one", 1)])
        found = emit.op("Greater", [best, emit.floats("none", LOWEST)])
        zero = emit.floats("zero", 0.0)
        columns = [
            emit.op("Where", [_unsqueeze(emit, found, 2), picked, zero]),
            _unsqueeze(emit, emit.op("Where", [found, best, zero]), 2),
            _unsqueeze(emit, emit.op("Where", [found, emit.op("Cast", [label], to=1), emit.floats("no", -1.0)]), 2),
        ]
        return padded_rows(emit, emit.op("Concat", columns, axis=2), args[0], keep, attrs["max_det"])


def _masked(emit, boxes: str, scores: str, valid: str, min_size: float, axis: int) -> str:
    """The scores, -inf where `valid` is false or the box is thinner than min_size (torchvision's remove_small_boxes)."""
    sides = []
    for low, high in ((0, 2), (1, 3)):
        side = emit.op("Sub", [_slice(emit, boxes, high, high + 1, axis), _slice(emit, boxes, low, low + 1, axis)])
        sides.append(emit.op("GreaterOrEqual", [side, emit.floats("min_size", min_size)]))
    valid = emit.op("And", [valid, emit.op("And", sides)])
    return emit.op("Where", [valid, scores, emit.floats("removed", float("-inf"))])


def _selected(emit, boxes: str, scores: str, most: int, iou: float) -> str:
    """NonMaxSuppression's rows (batch, class, box): never a -inf score, at most `most` a class."""
    limits = [emit.ints("most", (most,)), emit.floats("iou", (iou,)), emit.floats("lowest", (LOWEST,))]
    return emit.op("NonMaxSuppression", [boxes, scores, *limits])


def _scattered(emit, like: str, place: str, values: str) -> str:
    """A tensor of `like`'s shape, -inf but at `place` (rows of indices), which takes `values`."""
    fill = emit.op("ConstantOfShape", [emit.op("Shape", [like])], value=_float_tensor(float("-inf")))
    return emit.op("ScatterND", [fill, place, values])


def _top(emit, flat: str, k: int) -> tuple[str, str]:
    best = emit.op("TopK", [flat, emit.ints("k", (k,))], axis=1)
    index = f"{best}_indices"  # TopK's second output
    emit.nodes[-1].output.append(index)
    return best, index


def _spread(emit, index: str) -> str:
    """N × k indices as N × k × 4, to gather whole boxes."""
    return emit.op("Expand", [_unsqueeze(emit, index, 2), emit.ints("four", (1, 1, 4))])
