"""``rmmss bench --model X.pt|X.onnx --backends torch,onnxruntime --sizes 512x512,1024x1024
--modalities 1,2,3,4 --out DIR``

Latency (p50/p90/p99 after warm-up), throughput and peak memory per backend, resolution and
number of modalities; writes ``DIR/bench.json`` and ``DIR/bench.md``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rmmss_core.bench.report import machine_info
from rmmss_core.cli.sizes import HELP as SIZE_HELP
from rmmss_core.cli.sizes import parse_size
from rmmss_core.deploy.backends import BACKENDS
from rmmss_core.deploy.bench import run_matrix, to_markdown
from rmmss_core.utils.io import atomic_write_json, atomic_write_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=Path, help=".pt checkpoint (every backend) or .onnx")
    p.add_argument("--backends", default="torch,onnxruntime", help=f"comma list of {sorted(BACKENDS)}")
    p.add_argument("--sizes", default="512x512", help=f"comma list of sizes, each {SIZE_HELP}")
    p.add_argument("--modalities", default="4", help="comma list of 1..4 (first k of R, D, E, L)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every backend")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="folder for bench.json / bench.md")


def check_runtimes(backends: list[str], device: str) -> None:
    """Raise ValueError naming the first backend whose runtime (or device) is missing here."""
    import importlib.util

    import torch
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__})")
    if "tensorrt" in backends and importlib.util.find_spec("tensorrt") is None:
        from rmmss_core.deploy.backends.tensorrt_backend import INSTALL_HINT
        raise ValueError(f"--backends tensorrt: {INSTALL_HINT}")
    if "onnxruntime" in backends and importlib.util.find_spec("onnxruntime") is None:
        raise ValueError("--backends onnxruntime: onnxruntime is not installed (pip install onnxruntime)")


def run(args: argparse.Namespace) -> int:
    import torch

    from rmmss_core.cli.checks import check_out_dir
    check_out_dir(args.out)  # before the benchmark runs, not after
    if not args.model.is_file():
        raise ValueError(f"--model {args.model}: {'is a folder' if args.model.is_dir() else 'does not exist'}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown:
        raise ValueError(f"unknown backend(s) {unknown}; valid: {sorted(BACKENDS)}")
    try:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    except argparse.ArgumentTypeError as e:
        raise ValueError(f"--sizes: {e}") from None
    modalities = [int(k) for k in args.modalities.split(",")]
    check_runtimes(backends, args.device)  # before any export: a missing runtime is found in 1 s, not 10
    if args.threads:
        torch.set_num_threads(args.threads)
    created = not args.out.exists()
    try:
        records = run_matrix(args.model, backends, sizes, modalities, device=args.device,
                             precision=args.precision, batch=args.batch, warmup=args.warmup,
                             iters=args.iters, cache_dir=args.out / "onnx-cache")
    except BaseException:
        if created:  # no partial output
            shutil.rmtree(args.out, ignore_errors=True)
        raise
    machine = machine_info()
    command = "rmmss bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "rmmss bench"
    atomic_write_json(args.out / "bench.json", {"command": command, "machine": machine,
                                                "model": str(args.model), "records": records})
    md = (f"# rmmss bench\n\nCommand: `{command}`. Machine: {machine['cpu']}, {machine['cores']} cores, "
          f"{machine['torch_threads']} torch threads, GPU {machine['gpu'] or 'none'}.\n\n" + to_markdown(records))
    atomic_write_text(args.out / "bench.md", md)
    print(md)
    return 0
