"""``rmmss gpu-check``: everything CUDA in rmmss, measured in one unattended command (< 10 min).

Steps (one module each): 1. the ``gpu``-marked tests (:mod:`.gpu_tests`); 2. B0 inference latency,
4 sensors, 1024x1024 and 512x512, fp32/bf16/fp16, eager/CUDA graphs/torch.compile, with the
one-sensor and Hugging Face SegFormer-B0 references (:mod:`.latency`); 3. the node's pipeline on
the device from raw message bytes to the downloaded mask (:mod:`.node`); 4. a teacher training
step, MiT-B2, 4 sensors, 1024x1024, batch 2, bf16 (:mod:`.train_step`); 5. the robustness
benchmark's GPU preset scaled to the minutes left (:mod:`.robustness`). :mod:`.runner` runs them
within the budget and writes ``docs/bench/gpu.md`` + ``gpu.json`` (:mod:`.report`).

``--device cpu --smoke`` runs every code path on a CPU with tiny stand-ins; that run is a test in
``make test`` (test/test_gpu_check.py), so the GPU run cannot break unseen.
"""
from rmmss_core.gpu_check.runner import STEPS, run_check

__all__ = ["STEPS", "run_check"]
