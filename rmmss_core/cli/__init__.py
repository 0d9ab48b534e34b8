"""The ``rmmss`` command line: ``rmmss <command> [options]``.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``rmmss --help`` is instant. The bag tools
live in ``rmmss_ros`` (they speak ROS message formats) but are reached from the same CLI.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("rmmss_core.cli.synth", "generate the synthetic multi-sensor dataset (DELIVER layout)"),
    "train": ("rmmss_core.cli.train", "train a recipe: teacher, dropout, anyseg, rmmss-hpdm, rmmss-fsm, m3l, u2mkd, compress"),
    "eval": ("rmmss_core.cli.evaluate", "evaluate checkpoints under every missing-sensor pattern (EMM, RMM, NM)"),
    "benchmark": ("rmmss_core.cli.benchmark", "the robustness benchmark: train every recipe, evaluate side by side"),
    "import": ("rmmss_core.cli.import_model", "import the authors' released trained models (robustseg, anyseg) exactly"),
    "info": ("rmmss_core.cli.info", "parameters and MACs of a model or checkpoint"),
    "export": ("rmmss_core.cli.export", "export a checkpoint to ONNX (any modality subset in one graph)"),
    "bench": ("rmmss_core.cli.bench", "latency, throughput and memory per inference backend"),
    "gpu-check": ("rmmss_core.cli.gpu_check", "every CUDA line measured in one command: docs/bench/gpu.md"),
    "bag": ("rmmss_ros.bag.cli", "write a sequence to a rosbag2 (mcap or sqlite3)"),
    "replay": ("rmmss_ros.replay.cli", "evaluate a bag offline through the node's pipeline, with sensor dropouts"),
    "play": ("rmmss_ros.play.cli", "publish a bag live over DDS with its original timing"),
    "demo": ("rmmss_ros.demo", "the main job: node + sample bag + sensor failure, live over DDS"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (``rmmss <command>: error: <problem> (see --help)``, exit 2)
    instead of the usage block; sub-command parsers inherit it."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# commands whose stop by SIGINT/SIGTERM is ordinary, also during their start-up (exit 0, no
# traceback): the handlers are armed before the command's module (torch, rclpy) is imported
QUIET_STOP = frozenset({"play"})


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: rmmss <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`rmmss <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        import difflib
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        print(f"rmmss: error: unknown command {name!r}"
              + (f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(COMMANDS)} (see `rmmss --help`)"),
              file=sys.stderr)
        return 2
    if name in QUIET_STOP:
        from rmmss_core import early_stop

        early_stop.install()
        try:
            return _run(name, rest)
        except early_stop.EarlyStop:
            return 0
    return _run(name, rest)


def _run(name: str, rest: list[str]) -> int:
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = OneLineParser(prog=f"rmmss {name}", description=help_)
    parser.add_argument("--log-level", default="INFO", help="logging level (DEBUG, INFO, WARNING)")
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt as e:
        if name in QUIET_STOP and type(e).__name__ == "EarlyStop":
            raise  # a stop during start-up: main() exits 0 quietly
        print(f"rmmss {name}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError, RuntimeError) as e:  # user-facing errors: one clear line
        if args.log_level.upper() == "DEBUG":
            raise
        from rmmss_core.cli.checks import one_line
        print(f"rmmss {name}: error: {one_line(e)}", file=sys.stderr)
        return 1
