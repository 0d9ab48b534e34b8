"""``make bench`` section: torch eager vs ONNX Runtime on CPU, side by side in one process.

Models: the ``tiny`` test model and the B0 student (mean fusion, 4 modalities), random weights
(latency does not depend on the weights). Both backends use the same number of threads.
On a machine with CUDA the torch backend (fp16, CUDA graphs) is also measured at 1024x1024.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from rmmss_core.bench.report import BenchReport
from rmmss_core.deploy.bench import run_matrix, to_markdown
from rmmss_core.models import create_model, save_model_checkpoint
from rmmss_core.spec import PreprocessSpec


def run(quick: bool = False) -> BenchReport:
    cases = [("tiny", [(256, 320)] if quick else [(256, 320), (512, 512)]),
             ("b0", [(256, 320)] if quick else [(512, 512), (1024, 1024)])]
    iters, warmup = (5, 1) if quick else (10, 2)
    records = []
    with tempfile.TemporaryDirectory(prefix="rmmss-bench-deploy-") as tmp:
        for size_name, sizes in cases:
            ckpt = Path(tmp) / f"{size_name}.pt"
            torch.manual_seed(0)
            model = create_model("anymodal", size=size_name, fusion="mean", missing="drop")
            save_model_checkpoint(ckpt, model, PreprocessSpec())
            for rec in run_matrix(ckpt, ["torch", "onnxruntime"], sizes, [4], iters=iters,
                                  warmup=warmup, cache_dir=Path(tmp) / "onnx"):
                records.append({"model": size_name, **rec})
            if torch.cuda.is_available():
                for rec in run_matrix(ckpt, ["torch"], [(1024, 1024)], [4], device="cuda",
                                      precision="fp16", iters=50, warmup=10):
                    records.append({"model": size_name, **rec})
    parts = ["Every figure is `backend.infer` end to end (host float32 inputs in, host uint8 mask "
             f"out), batch 1, 4 modalities, {torch.get_num_threads()} threads for both backends, "
             "p50 over the timed runs after warm-up; `p50 / torch` < 1 means ONNX Runtime is faster.\n"]
    for size_name, _ in cases:
        parts.append(f"### {size_name}\n\n" + to_markdown([r for r in records if r["model"] == size_name]))
    if not torch.cuda.is_available():
        parts.append("No GPU on this machine: the GPU target (B0, 4 modalities, 1024x1024, p50 < 4 ms) "
                     "was not measured; on a CUDA machine this benchmark adds torch fp16 + CUDA graphs.\n")
    return BenchReport(name="deploy", title="Deployment: torch eager vs ONNX Runtime (CPU)",
                       markdown="\n".join(parts), records=records, command="make bench")
