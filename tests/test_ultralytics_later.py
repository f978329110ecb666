"""YOLOv10, YOLO26 (and the later modules' files) imported from Ultralytics' own YAMLs: the outputs of both
heads of an end-to-end model equal Ultralytics' own, given its state_dict through `cnndsl import`.

Counts and shapes at every scale are compared in tests/test_import_ultralytics.py (IMPORTED); here the outputs
at scale n, with random weights and norm statistics, within 1e-4."""

from __future__ import annotations

import pytest

from cnndsl.importers.ultralytics_rows import decodes_boxes, has_attention

torch = pytest.importorskip("torch")
yaml = pytest.importorskip("yaml")
pytest.importorskip("ultralytics", reason="scripts/test installs ultralytics (pip --no-deps)")
from test_import_ultralytics import MODELS, SIZE, imported_with_weights, randomised, ultralytics_model  # noqa: E402

pytestmark = pytest.mark.skipif(not (decodes_boxes() and has_attention()), reason="needs the detection kinds")


def _close(mine, reference):
    assert reference.abs().max() > 1  # not a trivially small output
    torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


@pytest.mark.parametrize("name", ["v10/yolov10n.yaml", "26/yolo26.yaml"])
def test_end_to_end_models_give_both_heads_ultralytics_outputs(tmp_path, name):
    """The first output is the one-to-many head's decoded boxes (Ultralytics' default, end2end=False); the
    second the one-to-one head's corners and scores, which Ultralytics' own top-k (Detect.postprocess) turns
    into the end-to-end detections exactly as it does its own."""
    model = randomised(ultralytics_model(yaml.safe_load((MODELS / name).read_text()), "n", "cpu"))
    ours = imported_with_weights(tmp_path, name, model)
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    head = model.model[-1]
    with torch.no_grad():
        many, one = ours(images)
        model.end2end = False
        expected_many, _ = model(images)
        model.end2end = True
        expected_e2e, _ = model(images)
        mine_e2e = head.postprocess(one.permute(0, 2, 1))
    assert tuple(many.shape) == tuple(one.shape) == (2, 84, 64 + 16 + 4)
    _close(many, expected_many)
    assert tuple(expected_e2e.shape) == (2, 84, 6)  # max_det 300 > 84 anchors: every anchor, best first
    _close(mine_e2e, expected_e2e)
