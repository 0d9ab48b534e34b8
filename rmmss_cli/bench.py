"""``make bench``: every benchmark of both packages in one run, one report folder and one index.

    python -m rmmss_cli.bench --out docs/bench [--only node deploy] [--quick]

The runner is the core's (``rmmss_core.bench.__main__``); the sections are the core's
``rmmss_core.bench.BENCHMARKS`` (encodings, synth, models, deploy) followed by the ROS package's
``rmmss_ros.bench.BENCHMARKS`` (node: the per-frame path with its input-conversion and synchroniser
subsections).
"""
from __future__ import annotations

import sys

from rmmss_core.bench import BENCHMARKS as CORE_BENCHMARKS
from rmmss_core.bench.__main__ import main as run_benchmarks
from rmmss_ros.bench import BENCHMARKS as ROS_BENCHMARKS

BENCHMARKS: dict[str, str] = {**CORE_BENCHMARKS, **ROS_BENCHMARKS}


def main(argv=None) -> int:
    return run_benchmarks(argv, BENCHMARKS, prog="python -m rmmss_cli.bench")


if __name__ == "__main__":
    sys.exit(main())
