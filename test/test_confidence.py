"""Per-pixel confidence on the device beside the argmax: its definition, every backend against the
softmax of its own logits (<= 1/255), ``min_confidence`` marking, and old graphs without it."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from rmmss_core.deploy import ModelFileError, create_backend, export_checkpoint, read_onnx_metadata
from rmmss_core.deploy.confidence import (
    UNLABELED,
    apply_min_confidence,
    dequantize,
    mask_and_confidence,
    min_confidence_level,
    quantize,
    softmax_max,
)
from rmmss_core.deploy.export import random_inputs
from rmmss_core.modalities import subset_mask
from rmmss_core.models import create_model, save_model_checkpoint
from rmmss_core.spec import PreprocessSpec

SIZE = (48, 64)
SUBSETS_CHECKED = ("RDEL", "R", "DL", "E")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny checkpoint (DELIVER's 25 classes) and its ONNX export (batch 2, default opset)."""
    root = tmp_path_factory.mktemp("confidence")
    torch.manual_seed(0)
    model = create_model("anymodal", size="tiny", fusion="mean", missing="token").eval()
    with torch.no_grad():  # an untrained head is near-uniform; sharpen it for a real spread of confidences
        model.decoder.linear_pred.weight.mul_(40.0)
    save_model_checkpoint(root / "m.pt", model, PreprocessSpec.for_class_set("deliver", input_size=SIZE))
    export_checkpoint(root / "m.pt", root / "m.onnx", batch=2)
    return root


def test_definition_on_hand_made_logits():
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, :, 0, 0] = torch.tensor([0.0, 0.0, -1e9])   # two classes tie: p = 0.5 -> 127.5 -> 128
    logits[0, :, 0, 1] = torch.tensor([50.0, 0.0, 0.0])   # certain: 255
    logits[0, :, 0, 2] = torch.tensor([0.0, 0.0, 0.0])    # uniform over 3: 85
    logits[0, :, 0, 3] = torch.tensor([1.0, 3.0, 2.0])    # class 1
    mask, conf = mask_and_confidence(logits)
    assert mask.dtype == conf.dtype == torch.uint8 and mask.shape == conf.shape == (1, 1, 4)
    assert mask[0, 0].tolist() == [0, 0, 0, 1]
    p3 = float(np.exp(3) / (np.exp(1) + np.exp(2) + np.exp(3)))
    assert conf[0, 0].tolist() == [128, 255, 85, int(np.floor(255 * p3 + 0.5))]
    # round half up, clipped, and back
    assert quantize(np.array([0.0, 0.5 / 255, 1.0, 1.2, -0.1])).tolist() == [0, 1, 255, 255, 0]
    assert dequantize(np.array([255], np.uint8))[0] == pytest.approx(1.0)
    # the in-place variant (the torch backend's) gives the same numbers and overwrites its input
    big = torch.randn(2, 25, 8, 9) * 4
    copy = big.clone()
    pure, fast = mask_and_confidence(big), mask_and_confidence(copy, inplace=True)
    assert torch.equal(pure[0], fast[0]) and torch.equal(pure[1], fast[1]) and not torch.equal(big, copy)
    # 255 uniform classes still read 1, never 0
    assert int(mask_and_confidence(torch.zeros(1, 255, 1, 1))[1]) == 1


def test_min_confidence_level_and_marking():
    assert min_confidence_level(0.0) == 0 and min_confidence_level(0.5) == 128 and min_confidence_level(1.0) == 255
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="min_confidence"):
            min_confidence_level(bad)
    mask = np.array([[3, 4, 5]], np.uint8)
    conf = np.array([[127, 128, 200]], np.uint8)
    assert apply_min_confidence(mask.copy(), conf, 0.5).tolist() == [[UNLABELED, 4, 5]]
    assert apply_min_confidence(mask.copy(), conf, 0.0).tolist() == [[3, 4, 5]]
    with pytest.raises(ValueError, match="shape"):
        apply_min_confidence(mask.copy(), conf[:, :2], 0.5)


def _check_against_own_softmax(backend, x, subset):
    available = subset_mask(subset, 2).numpy()
    mask, conf = backend.infer_with_confidence(x, available)
    logits = backend.infer_logits(x, available)
    p = softmax_max(logits)
    assert mask.dtype == conf.dtype == np.uint8 and mask.shape == conf.shape == (2, *SIZE)
    assert np.array_equal(mask, backend.infer(x, available)), "infer() and infer_with_confidence() disagree"
    assert np.array_equal(mask, logits.argmax(1))
    err = np.abs(conf.astype(np.float64) / 255 - p)
    assert err.max() <= 1 / 255, f"{backend.name} {subset}: confidence off by {err.max() * 255:.3f}/255"
    # the rounding rule itself (float32 exp on the device vs float64 here): within half a level
    assert err.max() <= 0.5 / 255 + 1e-5
    assert conf.min() >= 1 and len(np.unique(conf)) > 5, "a real spread of confidences is checked"
    return mask, conf


@pytest.mark.parametrize("kind,file", [("torch", "m.pt"), ("onnxruntime", "m.onnx")])
def test_confidence_equals_the_backends_softmax_max(files, kind, file):
    x = random_inputs(2, SIZE, seed=5)
    with create_backend(kind, files / file) as b:
        assert b.provides_confidence
        for subset in SUBSETS_CHECKED:
            _check_against_own_softmax(b, x, subset)


def test_torch_and_onnxruntime_confidence_agree(files):
    x = random_inputs(2, SIZE, seed=6)
    available = subset_mask("RD", 2).numpy()
    with create_backend("torch", files / "m.pt") as tb, create_backend("onnxruntime", files / "m.onnx") as ob:
        (ma, ca), (mb, cb) = tb.infer_with_confidence(x, available), ob.infer_with_confidence(x, available)
    assert (ma == mb).mean() >= 0.999
    assert np.abs(ca.astype(int) - cb.astype(int)).max() <= 1


@pytest.mark.parametrize("kind,file", [("torch", "m.pt"), ("onnxruntime", "m.onnx")])
def test_min_confidence_marks_exactly_the_pixels_below_it(files, kind, file):
    x = random_inputs(2, SIZE, seed=7)
    available = subset_mask("RDEL", 2).numpy()
    with create_backend(kind, files / file) as b:
        plain, conf = b.infer_with_confidence(x, available)
        m = float(np.median(conf)) / 255
        marked, conf2 = b.infer_with_confidence(x, available, min_confidence=m)
        with pytest.raises(ValueError, match="min_confidence"):
            b.infer_with_confidence(x, available, min_confidence=2.0)
    level = min_confidence_level(m)
    below = conf < level
    assert np.array_equal(conf, conf2)
    assert 0.2 < below.mean() < 0.8
    assert np.all(marked[below] == UNLABELED)
    assert np.array_equal(marked[~below], plain[~below])


def test_graph_without_confidence_still_serves_masks_and_says_to_re_export(files, tmp_path):
    proto = onnx.load(str(files / "m.onnx"))
    keep = [o for o in proto.graph.output if o.name != "confidence"]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    assert read_onnx_metadata(tmp_path / "old.onnx").outputs == ("mask", "logits")
    x = random_inputs(2, SIZE)
    available = subset_mask("R", 2).numpy()
    with create_backend("onnxruntime", tmp_path / "old.onnx") as b:
        assert not b.provides_confidence
        assert b.infer(x, available).shape == (2, *SIZE)
        with pytest.raises(ModelFileError, match="re-export"):
            b.infer_with_confidence(x, available)


def test_fp16_graph_confidence_matches_its_logits(files, tmp_path):
    out = export_checkpoint(files / "m.pt", tmp_path / "m16.onnx", batch=2, fp16=True, opset=17)
    with create_backend("onnxruntime", out, precision="fp16") as b:
        _check_against_own_softmax(b, random_inputs(2, SIZE, seed=8), "RDEL")


def _tensorrt_ready() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (it cannot be on this project's machines)"
    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA device"
    return None


@pytest.mark.skipif(_tensorrt_ready() is not None, reason=str(_tensorrt_ready()))
def test_tensorrt_confidence_equals_its_softmax_max(files):  # pragma: no cover - needs TensorRT
    with create_backend("tensorrt", files / "m.onnx", device="cuda") as b:
        assert b.provides_confidence
        _check_against_own_softmax(b, random_inputs(2, SIZE, seed=9), "RDEL")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_cuda_graphs_confidence(files):  # pragma: no cover - needs a GPU
    x = random_inputs(2, SIZE, seed=10)
    with create_backend("torch", files / "m.pt", device="cuda") as gb:
        assert gb.cuda_graphs
        for subset in ("RDEL", "R"):
            mask, conf = _check_against_own_softmax(gb, x, subset)
            again = gb.infer_with_confidence(x, subset_mask(subset, 2).numpy())  # graph replay
            assert np.array_equal(again[0], mask) and np.array_equal(again[1], conf)


def test_a_graph_without_confidence_is_refused_at_start_for_min_confidence_too(files, tmp_path, capsys):
    """output.confidence false with output.min_confidence > 0 passed the node's start-up check on an
    ONNX file without the confidence output, and then every frame failed ('turn confidence off',
    which it was); the node and rmmss replay now refuse it at start naming output.min_confidence."""
    from pathlib import Path

    from rmmss_cli import main as rmmss
    from rmmss_ros.outputs.node_outputs import confidence_problem

    one = export_checkpoint(files / "m.pt", tmp_path / "one.onnx", batch=1)
    proto = onnx.load(str(one))
    keep = [o for o in proto.graph.output if o.name != "confidence"]
    del proto.graph.output[:]
    proto.graph.output.extend(keep)
    onnx.save(proto, str(tmp_path / "old.onnx"))
    with create_backend("onnxruntime", tmp_path / "old.onnx") as b:
        text = confidence_problem({"output.confidence": False, "output.min_confidence": 0.5}, b, "old.onnx")
        assert text and "output.min_confidence need" in text and "set output.min_confidence 0" in text
        assert confidence_problem({"output.confidence": False, "output.min_confidence": 0.0}, b, "old.onnx") is None
        both = confidence_problem({"output.confidence": True, "output.min_confidence": 0.3}, b, "old.onnx")
        assert "output.confidence and output.min_confidence need:" in both
    with create_backend("onnxruntime", one) as b:
        assert confidence_problem({"output.confidence": True, "output.min_confidence": 0.5}, b, "one.onnx") is None
    sample = Path(__file__).resolve().parents[1] / "rosbags" / "sample"
    code = rmmss(["replay", str(sample), "--model", str(tmp_path / "old.onnx"), "--backend", "onnxruntime",
                  "--param", "output.confidence=false", "--param", "output.min_confidence=0.5",
                  "--out", str(tmp_path / "rep")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert code == 1 and len(err) == 1 and "output.min_confidence" in err[0], err
    assert not (tmp_path / "rep").exists()
