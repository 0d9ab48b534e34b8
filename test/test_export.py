"""ONNX export: one graph serves all 15 modality subsets exactly as PyTorch does."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rmmss_core.deploy import export_checkpoint, read_onnx_metadata
from rmmss_core.deploy.export import INPUT_NAMES, random_inputs
from rmmss_core.modalities import SUBSETS, subset_mask, subset_name
from rmmss_core.models import create_model, save_model_checkpoint
from rmmss_core.spec import PreprocessSpec
from rmmss_core.utils.io import CheckpointError

SIZE = (64, 80)


def make_checkpoint(path, fusion="mean", missing="drop", size="tiny"):
    """A tiny any-modal segmentor, or with ``fusion="fsm"`` the composite RMMSS-FSM student
    (teacher + robust model + selection module: our variant with softmax selection), with
    ``fusion="fsm_authors"`` the authors' FSM (arg-max selection of the original features)."""
    torch.manual_seed(0)
    if fusion in ("fsm", "fsm_authors"):
        from rmmss_core.models import model_spec

        teacher, robust = (model_spec(create_model("anymodal", size=size, fusion=f, missing=missing))
                           for f in ("linear", "mean"))
        variant = {"variant": "authors"} if fusion == "fsm_authors" else {"variant": "ours", "select": "softmax"}
        model = create_model("rmmss_fsm", teacher=teacher, robust=robust, **variant).eval()
    else:
        model = create_model("anymodal", size=size, fusion=fusion, missing=missing).eval()
    spec = PreprocessSpec.for_class_set("deliver", input_size=SIZE)
    save_model_checkpoint(path, model, spec)
    return model, spec


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def compare_all_subsets(model, path, batch=1, fp16=False):
    """Worst max |logit diff| and worst argmax agreement over the 15 subsets."""
    sess = session(path)
    x = random_inputs(batch, SIZE, seed=1)  # missing sensors get noise, not zeros: the mask decides
    tin = {k: torch.from_numpy(v) for k, v in x.items()}
    worst_diff, worst_agree = 0.0, 1.0
    for subset in SUBSETS:
        available = subset_mask(subset, batch)
        with torch.no_grad():
            ref = model(tin, available).logits.numpy()
        mask, logits = sess.run(["mask", "logits"], {**x, "available": available.numpy()})
        assert mask.dtype == np.uint8 and mask.shape == (batch, *SIZE), subset_name(subset)
        assert logits.dtype == np.float32 and logits.shape == ref.shape
        worst_diff = max(worst_diff, float(np.abs(logits - ref).max()))
        worst_agree = min(worst_agree, float((mask == ref.argmax(1)).mean()))
        assert np.array_equal(mask, logits.argmax(1)), "in-graph argmax differs from the logits' argmax"
    return worst_diff, worst_agree


@pytest.mark.parametrize("fusion,opset", [("mean", 18), ("mean", 17), ("linear", 17), ("hub", 17),
                                          ("impute", 17), ("fsm", 17), ("fsm_authors", 17)])
def test_graph_matches_torch_on_all_15_subsets(tmp_path, fusion, opset):
    model, _ = make_checkpoint(tmp_path / "m.pt", fusion)
    out = export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx", opset=opset)
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == opset
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert proto.graph.input[4].type.tensor_type.elem_type == onnx.TensorProto.BOOL
    assert [o.name for o in proto.graph.output] == ["mask", "logits", "confidence"]
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert proto.graph.output[2].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert "If" not in {n.op_type for n in proto.graph.node}, "missing sensors must be masked arithmetic"
    assert "LayerNormalization" in {n.op_type for n in proto.graph.node}, "LayerNorm must stay one op"
    diff, agree = compare_all_subsets(model, out)
    assert diff < 1e-4
    assert agree >= 0.999


def test_metadata_round_trip_and_static_shapes(tmp_path):
    _, spec = make_checkpoint(tmp_path / "m.pt", "mean")
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    out = export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx", input_size=(96, 128))
    info = read_onnx_metadata(out)
    assert info.spec.class_names == spec.class_names and info.spec.palette == spec.palette
    assert info.spec.normalization == spec.normalization and info.spec.lidar == spec.lidar
    assert info.spec.input_size == (96, 128) == info.input_size  # the exported size is recorded
    assert info.model["name"] == ckpt["model"]["name"] and info.model["config"] == ckpt["model"]["config"]
    assert info.precision == "fp32" and info.batch == 1 and info.opset == 18
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert PreprocessSpec.from_json(meta["rmmss.spec"]) == info.spec
    assert json.loads(meta["rmmss.model"])["config"]["fusion"] == "mean"
    dims = [[d.dim_value for d in i.type.tensor_type.shape.dim] for i in onnx.load(str(out)).graph.input]
    assert dims == [[1, 3, 96, 128]] * 4 + [[1, 4]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.pt"], "temporary files left behind"


def test_dynamic_batch_with_a_different_subset_per_sample(tmp_path):
    model, _ = make_checkpoint(tmp_path / "m.pt", "mean")
    out = export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx", dynamic_batch=True)
    assert read_onnx_metadata(out).batch is None
    sess = session(out)
    for batch in (1, 3):
        x = random_inputs(batch, SIZE, seed=batch)
        available = torch.tensor([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)[:batch]
        with torch.no_grad():
            ref = model({k: torch.from_numpy(v) for k, v in x.items()}, available).logits.numpy()
        mask, logits, conf = sess.run(None, {**x, "available": available.numpy()})
        assert conf.shape == mask.shape and conf.dtype == np.uint8
        assert mask.shape == (batch, *SIZE)
        assert np.abs(logits - ref).max() < 1e-4
        assert (mask == ref.argmax(1)).mean() >= 0.999


def test_fp16_graph_keeps_layernorm_and_softmax_in_fp32(tmp_path):
    model, _ = make_checkpoint(tmp_path / "m.pt", "hub")
    out = export_checkpoint(tmp_path / "m.pt", tmp_path / "m16.onnx", fp16=True, opset=17)
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(out)))
    onnx.checker.check_model(proto, full_check=True)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    fp32, fp16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    safe = [n for n in proto.graph.node if n.op_type in ("LayerNormalization", "Softmax")]
    assert safe and all(types[n.input[0]] == fp32 for n in safe)
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert convs and all(types[n.input[1]] == fp16 for n in convs), "weights must be fp16"
    assert [types[i.name] for i in proto.graph.input[:4]] == [fp32] * 4  # callers never change
    assert read_onnx_metadata(out).precision == "fp16"
    diff, agree = compare_all_subsets(model, out)
    assert diff < 0.05 and agree >= 0.99  # fp16 vs the fp32 model: near-ties of random weights flip


def test_export_errors_name_the_problem(tmp_path):
    make_checkpoint(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="opset 16"):
        export_checkpoint(tmp_path / "m.pt", tmp_path / "m.onnx", opset=16)
    with pytest.raises(CheckpointError, match="nope.pt"):
        export_checkpoint(tmp_path / "nope.pt", tmp_path / "m.onnx")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        export_checkpoint(tmp_path / "bad.pt", tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export_with_verify(tmp_path, capsys):
    from rmmss_cli import main

    make_checkpoint(tmp_path / "m.pt")
    rc = main(["export", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "x.onnx"),
               "--opset", "17", "--verify"])
    text = capsys.readouterr().out
    assert rc == 0 and (tmp_path / "x.onnx").is_file()
    assert "RDEL" in text and "checker passed" in text
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt")]) == 1


@pytest.mark.slow
def test_b0_export_matches_torch_on_all_15_subsets(tmp_path):
    torch.manual_seed(0)
    model = create_model("anymodal", size="b0", fusion="mean", missing="drop").eval()
    save_model_checkpoint(tmp_path / "b0.pt", model, PreprocessSpec(input_size=(128, 160)))
    out = export_checkpoint(tmp_path / "b0.pt", tmp_path / "b0.onnx")
    from rmmss_core.deploy.verify import compare_with_torch

    rows = compare_with_torch(model, out)
    assert len(rows) == 15
    assert max(r["max_abs_diff"] for r in rows) < 1e-3
    assert min(r["argmax_agreement"] for r in rows) >= 0.999
