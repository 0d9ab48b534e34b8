"""The ``rmmss`` command line: ``rmmss <command> [options]``.

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``.
Modules are imported only when their command runs, so ``rmmss --help`` is instant.

This package knows only the core's commands (:data:`COMMANDS`) and the dispatch machinery
(:func:`main`). The ``rmmss`` command users run is assembled one level up, by :mod:`rmmss_cli`, from
this table and the ROS package's (``rmmss_ros.commands``: bag, replay, play, demo, and gpu-check with
the node step); ``python -m rmmss_core.cli`` serves the core's commands alone (e.g. under torchrun).
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
}


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (``rmmss <command>: error: <problem> (see --help)``, exit 2)
    instead of the usage block; sub-command parsers inherit it."""

    def error(self, message: str):  # noqa: D102 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _usage(commands: dict[str, tuple[str, str]]) -> str:
    width = max(len(n) for n in commands)
    lines = ["usage: rmmss <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in commands.items()]
    lines += ["", "`rmmss <command> --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, commands: dict[str, tuple[str, str]] | None = None,
         quiet_stop: frozenset[str] = frozenset()) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to one of ``commands`` (default: the core's
    :data:`COMMANDS`). ``quiet_stop``: commands whose stop by SIGINT/SIGTERM is ordinary, also
    during their start-up (exit 0, no traceback): the handlers are armed before the command's
    module (torch, rclpy) is imported."""
    commands = COMMANDS if commands is None else commands
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(commands))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        import difflib
        close = difflib.get_close_matches(name, commands, n=1)
        print(f"rmmss: error: unknown command {name!r}"
              + (f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(commands)} (see `rmmss --help`)"),
              file=sys.stderr)
        return 2
    if name in quiet_stop:
        from rmmss_core import early_stop

        early_stop.install()
        try:
            return _run(name, rest, commands[name], quiet=True)
        except early_stop.EarlyStop:
            return 0
    return _run(name, rest, commands[name])


def _run(name: str, rest: list[str], entry: tuple[str, str], quiet: bool = False) -> int:
    module_name, help_ = entry
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
        if quiet and type(e).__name__ == "EarlyStop":
            raise  # a stop during start-up: main() exits 0 quietly
        print(f"rmmss {name}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, OSError, RuntimeError) as e:  # user-facing errors: one clear line
        if args.log_level.upper() == "DEBUG":
            raise
        from rmmss_core.cli.checks import one_line
        print(f"rmmss {name}: error: {one_line(e)}", file=sys.stderr)
        return 1
