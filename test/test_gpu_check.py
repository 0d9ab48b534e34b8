"""``rmmss gpu-check --device cpu --smoke``: every step's code path on the CPU, the document with
every row (GPU rows "not yet run"), plainly stated skips; the report's GPU figures from a GPU-like
document; the JUnit parsing and data archive checks of the steps."""
from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest
import torch

from rmmss_core.gpu_check import run_check
from rmmss_core.gpu_check.common import Context, Row, time_fn
from rmmss_core.gpu_check.gpu_tests import parse_junit
from rmmss_core.gpu_check.latency import MODES, NETS, PRECISIONS, SIZES, row_name, summary
from rmmss_core.gpu_check.report import render
from rmmss_core.gpu_check.robustness import _extract
from rmmss_ros.bench.gpu_check import GPU_CHECK_STEPS


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check")
    doc = run_check("cpu", smoke=True, out=out, command="rmmss gpu-check --device cpu --smoke",
                    contributed=GPU_CHECK_STEPS)
    return out, doc


def test_cpu_smoke_writes_every_row_and_fails_none(smoke):
    out, doc = smoke
    on_disk = json.loads((out / "gpu.json").read_text())
    assert on_disk["rows"] == doc["rows"] and on_disk["device"] == "cpu" and on_disk["smoke"]
    rows = {(r["step"], r["name"]): r for r in doc["rows"]}
    failed = [r for r in doc["rows"] if r["status"] == "failed"]
    assert not failed, failed
    for size in SIZES:
        for precision in PRECISIONS:
            for mode in MODES:
                for net in NETS:
                    r = rows[("latency", row_name(net, size, precision, mode))]
                    if mode == "cuda_graphs" and not net.startswith("hf_"):
                        assert r["status"] == "not yet run"
                    elif mode == "eager" and not net.startswith("hf_"):
                        assert r["status"] == "smoke" and r["figures"]["p50_ms"] > 0  # the code path ran
                    else:  # compile on CPU, or transformers absent: said why
                        assert r["status"] in ("skipped", "smoke") and (r["reason"] or r["status"] == "smoke")
    node = [r for r in doc["rows"] if r["step"] == "node"]
    assert len(node) == 5 and {r["status"] for r in node} <= {"smoke", "skipped"}
    equal = next(r for r in node if "vs CPU inputs" in r["name"])
    assert equal["figures"]["max_diff_levels"] <= 1.0 + 1e-3
    train = next(r for r in doc["rows"] if r["step"] == "train")
    assert train["status"] == "smoke" and train["figures"]["p50_ms"] > 0
    rob = next(r for r in doc["rows"] if r["step"] == "robustness")
    assert rob["status"] == "smoke" and set(rob["figures"]["headline"]) == {"dropout"}
    tests = [r for r in doc["rows"] if r["step"] == "tests"]
    names = {r["name"] for r in tests}
    assert "test/test_gpu.py::test_single_process_nccl_group" in names
    assert any("test_torch_cuda_fp16_with_cuda_graphs" in n for n in names)
    assert any(n.endswith("[cuda]") for n in names)  # the device preprocessing on CUDA
    if not torch.cuda.is_available():
        assert all(r["status"] in ("not yet run", "skipped") for r in tests)


def test_cpu_smoke_document_says_plainly_what_did_not_run(smoke):
    out, doc = smoke
    md = (out / "gpu.md").read_text()
    assert "CPU smoke run" in md and "No figure here was measured on a GPU" in md
    assert "What did not run, and why:" in md and "not yet run" in md
    for r in doc["rows"]:
        assert r["name"].split(" ")[0] in md
    for title in ("GPU-marked tests", "Inference latency", "pipeline on the device", "Teacher training step",
                  "Robustness benchmark"):
        assert title in md
    assert "pip download --python-version 3.12 --only-binary=:all:" in md and "--pack-data" in md
    assert "not yet measured" in md  # the 4 ms target: not claimed


def test_gpu_figures_are_reported_with_the_target_and_the_reference_ratio():
    def lat(net, mode, p50, precision="bf16"):
        return Row("latency", row_name(net, (1024, 1024), precision, mode), "ok", "",
                   {"net": net, "size": [1024, 1024], "precision": precision, "mode": mode, "p50_ms": p50,
                    "p90_ms": p50 * 1.1, "setup_s": 1.0})
    rows = [lat("b0_4_sensors", "eager", 9.0), lat("b0_4_sensors", "cuda_graphs", 3.0),
            lat("hf_segformer_b0_batch4", "cuda_graphs", 6.0), lat("b0_1_sensor", "cuda_graphs", 1.5),
            lat("b0_4_sensors", "cuda_graphs", 3.5, "fp16")]
    s = summary(rows)
    assert s["best"] == row_name("b0_4_sensors", (1024, 1024), "bf16", "cuda_graphs") and s["meets_target"]
    assert s["ratio_to_hf_segformer_b0_batch4"] == pytest.approx(0.5) and s["ratio_to_b0_1_sensor"] == pytest.approx(2.0)
    doc = {"command": "rmmss gpu-check", "device": "cuda", "smoke": False, "budget_s": 540, "wall_s": 500,
           "step_s": {"latency": 100}, "machine": {"cpu": "x", "cores": 16, "gpu": "NVIDIA H200", "gpu_memory_gb": 139,
                                                   "gpu_count": 1},
           "versions": {"torch": "2.11", "open3d": None}, "rows": [r.to_dict() for r in rows],
           "summary": {"latency": s, "counts": {"ok": 5, "smoke": 0, "not yet run": 0, "skipped": 0, "failed": 0}}}
    md = render(doc)
    assert "| 3.00 |" in md and "target <= 4 ms: met" in md and "ratio to hf_segformer_b0_batch4: 0.50x" in md
    assert "NVIDIA H200" in md and "Nothing was skipped." in md and "CPU smoke run" not in md
    slow = summary([lat("b0_4_sensors", "cuda_graphs", 4.5)])
    assert not slow["meets_target"] and "NOT met" in render({**doc, "summary": {**doc["summary"], "latency": slow}})


def test_junit_rows_keep_failures_and_reasons(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text("""<?xml version="1.0"?><testsuites><testsuite name="pytest">
<testcase classname="test.test_gpu" name="test_a" time="1.5"/>
<testcase classname="test.test_gpu" name="test_b" time="0.1"><failure message="AssertionError: 0.9 &lt; 0.98">tb</failure></testcase>
<testcase classname="test.test_backends" name="test_c" time="0"><skipped message="needs a CUDA device; none on this machine"/></testcase>
<testcase classname="test.test_gpu" name="test_d" time="0"><skipped message="two NCCL processes need two GPUs"/></testcase>
</testsuite></testsuites>""")
    ctx = Context(torch.device("cpu"), True, time.monotonic() + 10, tmp_path)
    rows = {r.name: r for r in parse_junit(xml, ctx)}
    assert rows["test/test_gpu.py::test_a"].status == "ok"
    assert rows["test/test_gpu.py::test_b"].status == "failed" and "0.9 < 0.98" in rows["test/test_gpu.py::test_b"].reason
    assert rows["test/test_backends.py::test_c"].status == "not yet run"
    assert rows["test/test_gpu.py::test_d"].status == "skipped" and "two GPUs" in rows["test/test_gpu.py::test_d"].reason


def test_bad_requests_and_archives_are_refused_clearly(tmp_path):
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="sees no CUDA device.*--device cpu --smoke"):
            run_check("cuda", out=tmp_path)
    with pytest.raises(ValueError, match="add --smoke"):
        run_check("cpu", smoke=False, out=tmp_path)
    with pytest.raises(ValueError, match="unknown step"):
        run_check("cpu", smoke=True, out=tmp_path, steps=("latency", "warp"))
    bad = tmp_path / "bad.tar"
    (tmp_path / "evil.txt").write_text("x")
    with tarfile.open(bad, "w") as tar:
        tar.add(tmp_path / "evil.txt", arcname="evil.txt")
    with pytest.raises(ValueError, match="not a gpu-check data archive"):
        _extract(bad, tmp_path / "x")
    assert not (Path(tmp_path) / "x" / "evil.txt").exists()


def test_time_fn_stops_at_its_time_limit():
    calls = []
    t = time_fn(lambda: (calls.append(1), time.sleep(0.02)), lambda: None, warmup=1, iters=1000, max_s=0.1)
    assert 3 <= t["runs"] < 50 and t["p50_ms"] >= 15 and t["p90_ms"] >= t["p50_ms"]


def test_without_the_ros_package_the_node_step_says_where_it_comes_from(tmp_path):
    """The core's runner has no node step of its own (the pipeline lives in rmmss_ros): run alone
    (``python -m rmmss_core.cli gpu-check``) it reports the step skipped and names the command."""
    doc = run_check("cpu", smoke=True, out=tmp_path, steps=("node",))
    node = [r for r in doc["rows"] if r["step"] == "node"]
    assert len(node) == 1 and node[0]["status"] == "skipped" and "rmmss gpu-check" in node[0]["reason"]
