"""torchvision's Faster R-CNN as the tests' reference, on the CPU build: its compiled `nms` and `roi_align` replaced by
onnxruntime's NonMaxSuppression and RoiAlign kernels (one small ONNX model a call), and weights drawn so that
every part computes something (heads and batch-norm statistics included) without saturating a score.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
import torch
from onnx import TensorProto, helper
from oracles import torchvision_models


def _run(node, inputs: dict[str, np.ndarray], output_type: int, opset: int) -> np.ndarray:
    types = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64}
    info = [helper.make_tensor_value_info(name, types[value.dtype], None) for name, value in inputs.items()]
    output = [helper.make_tensor_value_info(node.output[0], output_type, None)]
    imports = [helper.make_opsetid("", opset)]
    model = helper.make_model(helper.make_graph([node], "one", info, output), opset_imports=imports, ir_version=8)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def ort_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision.ops.nms's signature: the indices kept by falling score, by onnxruntime's NonMaxSuppression."""
    if not len(boxes):
        return torch.zeros(0, dtype=torch.long)
    node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "most", "iou"], ["selected"])
    feeds = {
        "boxes": boxes.detach().float().numpy()[None],
        "scores": scores.detach().float().numpy()[None, None],
        "most": np.array([len(boxes)], np.int64),
        "iou": np.array([iou_threshold], np.float32),
    }
    return torch.from_numpy(_run(node, feeds, TensorProto.INT64, 13)[:, 2].copy())


def ort_roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """torchvision.ops.roi_align's signature (rois K × 5), by onnxruntime's RoiAlign kernel."""
    height, width = (output_size, output_size) if isinstance(output_size, int) else output_size
    if not len(boxes):
        return input.new_zeros((0, input.shape[1], height, width))
    node = helper.make_node(
        "RoiAlign", ["x", "rois", "images"], ["y"], output_height=height, output_width=width,
        sampling_ratio=max(sampling_ratio, 0), spatial_scale=spatial_scale, mode="avg",
        coordinate_transformation_mode="half_pixel" if aligned else "output_half_pixel",
    )  # fmt: skip
    feeds = {
        "x": input.detach().float().numpy(),
        "rois": boxes[:, 1:].detach().float().numpy(),
        "images": boxes[:, 0].long().numpy(),
    }
    return torch.from_numpy(_run(node, feeds, TensorProto.FLOAT, 16))


def ort_roi_pool(input: torch.Tensor, rois: torch.Tensor, output_size: int, spatial_scale: float) -> torch.Tensor:
    """torchvision.ops.roi_pool's signature (rois K × 5: image, x1, y1, x2, y2), by onnxruntime's MaxRoiPool."""
    if not len(rois):
        return input.new_zeros((0, input.shape[1], output_size, output_size))
    node = helper.make_node(
        "MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[output_size, output_size], spatial_scale=spatial_scale
    )
    feeds = {"x": input.detach().float().numpy(), "rois": rois.detach().float().numpy()}
    return torch.from_numpy(_run(node, feeds, TensorProto.FLOAT, 16))


def patch_torchvision(monkeypatch) -> None:
    """torchvision's detection code calls onnxruntime's kernels in place of its compiled ops."""
    torchvision_models()
    import torchvision.ops.boxes as boxes
    import torchvision.ops.poolers as poolers

    monkeypatch.setattr(boxes, "nms", ort_nms)
    monkeypatch.setattr(poolers, "roi_align", ort_roi_align)


def detection_model(name: str, size: int, seed: int = 0, **options):
    """torchvision's `name` (weights=None, weights_backbone=None), its transform the identity on `size` × `size`
    images (mean 0, std 1, no resizing), in eval mode, with random weights: every tensor drawn around its own
    scale, the RPN's and predictor's layers wide enough that scores and deltas spread without saturating."""
    torchvision_models()
    from torchvision.models.detection import faster_rcnn

    model = getattr(faster_rcnn, name)(
        weights=None, weights_backbone=None, min_size=size, max_size=size, image_mean=[0.0] * 3, image_std=[1.0] * 3,
        **options,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if key.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif key.endswith(("running_mean", ".bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.1)
            elif tensor.dim() == 1:  # batch norm's scale
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            else:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
    return _calibrated(model.eval(), size, generator)


def _calibrated(model, size: int, generator):
    """Heads scaled on one random image so that the RPN's logits spread by about 2, its deltas by 0.2, the box
    head's class logits by 2 and its deltas by 0.3: varied scores, boxes that move without exploding."""
    image = torch.rand(1, 3, size, size, generator=generator)
    head, box_head, predictor = model.rpn.head, model.roi_heads.box_head, model.roi_heads.box_predictor
    with torch.no_grad():
        features = list(model.backbone(image).values())
        spread = torch.cat([level.flatten() for level in features]).std()
        head.conv[0][0].weight.div_(spread)
        box_head.fc6.weight.div_(spread)
        hidden = [head.conv(level) for level in features]
        for layer, target in ((head.cls_logits, 2.0), (head.bbox_pred, 0.2)):
            layer.weight.mul_(target / torch.cat([layer(level).flatten() for level in hidden]).std())
        anchors = (
            torch.tensor([[0.0, 0.0, size / 2, size / 2]]).repeat(64, 1)
            + torch.rand(64, 4, generator=generator) * size / 2
        )
        pooled = box_head(model.roi_heads.box_roi_pool(model.backbone(image), [anchors], [(size, size)]))
        for layer, target in ((predictor.cls_score, 2.0), (predictor.bbox_pred, 0.3)):
            layer.weight.mul_(target / layer(pooled).std())
    return model
