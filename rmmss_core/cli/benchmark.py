"""``rmmss benchmark --preset cpu|gpu|smoke|curves``: the robustness benchmark (train every recipe with the
same budget on the seeded synthetic world, evaluate side by side, write docs/bench/robustness.md).

    rmmss benchmark --preset cpu                       # 3 seeds side by side, <= 90 min on 2 cores
    rmmss benchmark --preset gpu                       # 3 seeds one after the other on one GPU
    rmmss benchmark --preset smoke train.iters=2       # the harness in minutes
    rmmss benchmark --preset curves                    # learning curves: teacher + dropout, tiny / B0, 2 input sizes
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from rmmss_core.train.benchmark import PRESETS
    p.add_argument("--preset", default="cpu", choices=PRESETS, help="config/benchmark/<preset>.yaml")
    p.add_argument("--config", default=None, help="another benchmark YAML instead of the preset's")
    p.add_argument("overrides", nargs="*", default=[], help="overrides key.sub=value (e.g. train.iters=100)")
    p.parse_args = p.parse_intermixed_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    from rmmss_core.train.benchmark import load_preset, main
    command = " ".join(["rmmss benchmark", f"--preset {args.preset}",
                        *([f"--config {args.config}"] if args.config else []), *args.overrides])
    report = main(load_preset(args.preset, args.config, args.overrides), command)
    print(report)
    return 0
