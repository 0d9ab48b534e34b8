"""Benchmarks behind ``make bench``: each module measures one area and returns a BenchReport.

Figures are recorded with the command that produced them, the machine, and a comparison run in the
same process (ratios hold across noisy machines; absolute times mean something only on a GPU).
"""
from rmmss_core.bench.report import BenchReport, machine_info, time_callable

# name -> module exposing ``run(quick: bool) -> BenchReport``; the ROS package's sections (node,
# inputs, synchroniser) are in rmmss_ros.bench.BENCHMARKS, run together by ``python -m rmmss_cli.bench``
BENCHMARKS: dict[str, str] = {
    "encodings": "rmmss_core.bench.encodings",
    "synth": "rmmss_core.bench.synth",
    "models": "rmmss_core.bench.models",
    "deploy": "rmmss_core.bench.deploy",
}

__all__ = ["BENCHMARKS", "BenchReport", "machine_info", "time_callable"]
