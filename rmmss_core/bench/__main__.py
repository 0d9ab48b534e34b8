"""``python -m rmmss_core.bench [--only NAME ...] [--quick] --out docs/bench``: the runner.

``make bench`` runs it through ``python -m rmmss_cli.bench``, which hands it the core's BENCHMARKS and
the ROS package's (``rmmss_ros.bench.BENCHMARKS``); alone it runs the core's. Runs every benchmark given, writes ``<out>/<name>.md`` and ``<out>/<name>.json`` per
benchmark and the index ``docs/BENCHMARKS.md`` that gathers the sections.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from pathlib import Path

from rmmss_core.bench import BENCHMARKS, machine_info
from rmmss_core.utils.io import atomic_write_json, atomic_write_text

log = logging.getLogger("rmmss.bench")


def main(argv=None, benchmarks: dict[str, str] | None = None, prog: str = "python -m rmmss_core.bench") -> int:
    """Run ``benchmarks`` (name -> module with ``run(quick) -> BenchReport``; default the core's)."""
    benchmarks = BENCHMARKS if benchmarks is None else benchmarks
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--out", default="docs/bench", help="folder for per-benchmark reports")
    p.add_argument("--only", nargs="*", default=None, help=f"subset of {sorted(benchmarks)}")
    p.add_argument("--quick", action="store_true", help="fewer sizes and iterations (smoke run)")
    args = p.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    names = args.only or list(benchmarks)
    unknown = [n for n in names if n not in benchmarks]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; known: {sorted(benchmarks)}")
    out = Path(args.out)
    machine = machine_info()
    failures = 0
    for name in names:
        log.info("benchmark %s ...", name)
        t0 = time.perf_counter()
        try:
            report = importlib.import_module(benchmarks[name]).run(quick=args.quick)
        except Exception as e:  # noqa: BLE001 - one failing benchmark must not hide the others
            log.exception("benchmark %s failed: %s", name, e)
            failures += 1
            continue
        elapsed = time.perf_counter() - t0
        header = (f"## {report.title}\n\nCommand: `{report.command}`"
                  f"{' --quick' if args.quick else ''}. Machine: {machine['cpu']}, "
                  f"{machine['cores']} cores, torch {machine['torch']}"
                  f"{', GPU ' + machine['gpu'] if machine['gpu'] else ', no GPU'}. "
                  f"Run took {elapsed:.0f} s.\n\n")
        atomic_write_text(out / f"{name}.md", header + report.markdown.strip() + "\n")
        atomic_write_json(out / f"{name}.json", {"name": name, "machine": machine,
                                                 "command": report.command, "records": report.records})
        log.info("benchmark %s done in %.0f s -> %s", name, elapsed, out / f"{name}.md")
    write_index(out, benchmarks)
    return 1 if failures else 0


def write_index(out: Path, benchmarks: dict[str, str] | None = None) -> None:
    """docs/BENCHMARKS.md: every section found in ``out`` (including the robustness benchmark)."""
    index = out.parent / "BENCHMARKS.md"
    parts = ["# rmmss benchmarks\n",
             "Written by `make bench` (and `make bench-robustness` for the robustness section). "
             "Each section names the command, the machine and the comparison it was measured "
             "against. Regenerate rather than edit.\n"]
    order = ["robustness", *(BENCHMARKS if benchmarks is None else benchmarks)]
    for name in order + sorted(p.stem for p in out.glob("*.md") if p.stem not in order):
        f = out / f"{name}.md"
        if f.is_file():
            parts.append(f.read_text())
    atomic_write_text(index, "\n".join(parts))


if __name__ == "__main__":
    sys.exit(main())
