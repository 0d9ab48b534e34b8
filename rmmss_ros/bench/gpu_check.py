"""``rmmss gpu-check`` as users run it: the core's command (rmmss_core.cli.gpu_check: options, steps,
report) given the node pipeline's step, which lives here because the pipeline does
(:mod:`rmmss_ros.bench.gpu_node`). ``rmmss_cli`` registers this module under ``gpu-check``."""
from __future__ import annotations

import argparse

from rmmss_core.cli import gpu_check as core

GPU_CHECK_STEPS = {"node": "rmmss_ros.bench.gpu_node"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    core.add_arguments(p)


def run(args: argparse.Namespace) -> int:
    return core.run(args, contributed=GPU_CHECK_STEPS)
