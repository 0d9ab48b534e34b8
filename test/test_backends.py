"""Inference backends: same masks from torch and onnxruntime, clear errors, the bench runner."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rmmss_core.deploy import BackendUnavailableError, ModelFileError, create_backend, export_checkpoint
from rmmss_core.deploy.bench import first_k_mask, run_matrix, to_markdown
from rmmss_core.deploy.export import random_inputs
from rmmss_core.modalities import SUBSETS, subset_mask, subset_name
from rmmss_core.models import create_model, save_model_checkpoint
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import CheckpointError

SIZE = (64, 80)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny mean-fusion checkpoint and its static (batch 2) ONNX export."""
    root = tmp_path_factory.mktemp("backends")
    torch.manual_seed(0)
    model = create_model("anymodal", size="tiny", fusion="mean", missing="token").eval()
    save_model_checkpoint(root / "m.pt", model, PreprocessSpec(input_size=SIZE))
    export_checkpoint(root / "m.pt", root / "m.onnx", batch=2, opset=17)
    return root


def test_torch_and_onnxruntime_give_the_same_masks_on_all_subsets(files):
    x = random_inputs(2, SIZE, seed=3)
    xt = {k: torch.from_numpy(v) for k, v in x.items()}  # both input types are accepted
    with create_backend("torch", files / "m.pt") as tb, create_backend("onnxruntime", files / "m.onnx") as ob:
        assert tb.spec == ob.spec and tb.spec.input_size == SIZE
        assert (tb.name, ob.name, tb.device) == ("torch", "onnxruntime", "cpu")
        for subset in SUBSETS:
            available = subset_mask(subset, 2)
            a, b = tb.infer(xt, available), ob.infer(x, available.numpy())
            assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape == (2, *SIZE)
            assert (a == b).mean() >= 0.999, subset_name(subset)
            la, lb = tb.infer_logits(x, available), ob.infer_logits(xt, available)
            assert np.abs(la - lb).max() < 1e-4
            assert np.array_equal(a, la.argmax(1))
        # the mask matters: dropping a sensor changes the prediction of a trained-or-not model
        assert not np.array_equal(tb.infer(x, subset_mask("R", 2)), tb.infer(x, subset_mask("RDEL", 2)))


def test_onnxruntime_accepts_a_checkpoint_and_caches_the_export(files, tmp_path):
    x = random_inputs(1, SIZE)
    available = first_k_mask(2, 1)
    with create_backend("onnxruntime", files / "m.pt", cache_dir=tmp_path) as ob:
        cached = sorted(tmp_path.glob("m-*.onnx"))
        assert len(cached) == 1 and ob.path == cached[0]
        mask = ob.infer(x, available)
    with create_backend("torch", files / "m.pt") as tb:
        assert (mask == tb.infer(x, available)).mean() >= 0.999
    mtime = cached[0].stat().st_mtime_ns
    create_backend("onnxruntime", files / "m.pt", cache_dir=tmp_path).close()
    assert cached[0].stat().st_mtime_ns == mtime, "the cached export must be reused"


def test_torch_bf16_on_cpu(files):
    x = random_inputs(1, SIZE)
    available = first_k_mask(4, 1)
    with create_backend("torch", files / "m.pt", precision="bf16") as lo, create_backend("torch", files / "m.pt") as hi:
        a, b = lo.infer(x, available), hi.infer(x, available)
    assert a.dtype == np.uint8 and (a == b).mean() > 0.9


def test_missing_and_corrupt_files_are_named(files, tmp_path):
    for kind, name in (("torch", "absent.pt"), ("onnxruntime", "absent.onnx")):
        with pytest.raises(FileNotFoundError, match="absent"):
            create_backend(kind, tmp_path / name)
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="bad.pt"):
        create_backend("torch", tmp_path / "bad.pt")
    with pytest.raises(ModelFileError, match="bad.onnx"):
        create_backend("onnxruntime", tmp_path / "bad.onnx")
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"model\.bin: expected a file ending in \.onnx or \.pt"):
        create_backend("onnxruntime", tmp_path / "model.bin")


def test_an_onnx_file_not_from_rmmss_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "other.onnx"))
    with pytest.raises(ModelFileError, match="other.onnx.*rmmss export"):
        create_backend("onnxruntime", tmp_path / "other.onnx")


def test_unknown_kind_lists_the_valid_ones(files):
    with pytest.raises(ValueError, match=r"'openvino'.*\['onnxruntime', 'tensorrt', 'torch'\]"):
        create_backend("openvino", files / "m.onnx")
    with pytest.raises(ValueError, match="precision 'int4'"):
        create_backend("torch", files / "m.pt", precision="int4")
    with pytest.raises(ValueError, match="fp32 graph.*--fp16"):
        create_backend("onnxruntime", files / "m.onnx", precision="fp16")


def test_tensorrt_absent_is_a_clear_error(files):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    with pytest.raises(BackendUnavailableError, match="pip install tensorrt"):
        create_backend("tensorrt", files / "m.onnx", device="cuda")


def test_bad_inputs_are_named(files):
    x = random_inputs(2, SIZE)
    with create_backend("onnxruntime", files / "m.onnx") as ob:
        with pytest.raises(ValueError, match="missing \\['lidar'\\]"):
            ob.infer({k: v for k, v in x.items() if k != "lidar"}, first_k_mask(1, 2))
        with pytest.raises(ValueError, match="'depth' has shape"):
            ob.infer({**x, "depth": x["depth"][:, :, :32]}, first_k_mask(1, 2))
        with pytest.raises(ValueError, match="at least one available"):
            ob.infer(x, np.zeros((2, 4), bool))
        with pytest.raises(ValueError, match="2 x 4"):
            ob.infer(x, np.ones((2, 3), bool))
        with pytest.raises(ValueError, match="batch 2 at 64x80.*--dynamic-batch"):
            ob.infer(random_inputs(1, SIZE), first_k_mask(1, 1))


def test_bench_matrix_and_cli(files, tmp_path):
    records = run_matrix(files / "m.pt", ["torch", "onnxruntime"], [SIZE], [1, 4], iters=3, warmup=1,
                         cache_dir=tmp_path)
    assert [(r["backend"], r["modalities"]) for r in records] == [
        ("torch", 1), ("onnxruntime", 1), ("torch", 4), ("onnxruntime", 4)]  # interleaved side by side
    for r in records:
        assert r["peak_host_mb"] is not None and r["peak_cuda_mb"] is None and r["load_s"] >= 0
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["throughput_fps"] > 0 and r["runs"] == 3
    assert "p50 / torch" in to_markdown(records)
    from rmmss_cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--model", str(files / "m.pt"), "--sizes", "64x80", "--modalities", "2",
                 "--iters", "2", "--warmup", "1", "--out", str(out)]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert {r["backend"] for r in data["records"]} == {"torch", "onnxruntime"}
    assert "| onnxruntime | cpu |" in (out / "bench.md").read_text()


@pytest.mark.gpu
def test_torch_cuda_fp16_with_cuda_graphs_matches_cpu(files):
    x = random_inputs(2, SIZE)
    with create_backend("torch", files / "m.pt", device="cuda", precision="fp16") as gb, \
            create_backend("torch", files / "m.pt") as cb:
        for k in (1, 4):
            a, b = gb.infer(x, first_k_mask(k, 2)), cb.infer(x, first_k_mask(k, 2))
            assert (a == b).mean() >= 0.99
        assert len(gb._graphs) == 1  # one captured graph replayed for both masks


@pytest.mark.gpu
def test_onnxruntime_cuda_when_the_provider_exists(files):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
            create_backend("onnxruntime", files / "m.onnx", device="cuda")
        return
    x = random_inputs(2, SIZE)
    with create_backend("onnxruntime", files / "m.onnx", device="cuda") as gb, \
            create_backend("onnxruntime", files / "m.onnx") as cb:
        assert (gb.infer(x, first_k_mask(3, 2)) == cb.infer(x, first_k_mask(3, 2))).mean() >= 0.999


def test_an_onnx_file_on_the_torch_backend_names_the_backend_to_use(tmp_path):
    """replay and the node default to torch: `--model X.onnx` said only 'expected .pt', not how
    to serve the file that `rmmss export` had just written."""
    (tmp_path / "student.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"student\.onnx: expected a file ending in \.pt.*--backend onnxruntime"):
        create_backend("torch", tmp_path / "student.onnx")
