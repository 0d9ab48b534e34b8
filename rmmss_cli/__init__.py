"""The ``rmmss`` command: one CLI above both packages.

Each package registers its own commands in a plain table (name -> (module, one-line help)):
``rmmss_core.cli.COMMANDS`` (synth, train, eval, benchmark, info, export, bench, gpu-check) and
``rmmss_ros.commands.COMMANDS`` (bag, replay, play, demo, and gpu-check again with the node's step).
This module merges them (a later table replaces an entry in place, so ``rmmss --help`` keeps its
order) and dispatches with the core's machinery. Neither package names the other's modules; only
this one knows both.

    rmmss --help            # console script
    python -m rmmss_cli demo
"""
from __future__ import annotations

from collections.abc import Sequence

from rmmss_core.cli import COMMANDS as CORE_COMMANDS
from rmmss_core.cli import main as dispatch
from rmmss_ros.commands import COMMANDS as ROS_COMMANDS
from rmmss_ros.commands import QUIET_STOP

COMMANDS: dict[str, tuple[str, str]] = {**CORE_COMMANDS, **ROS_COMMANDS}


def main(argv: Sequence[str] | None = None) -> int:
    """``rmmss <command> [options]`` over every package's commands."""
    return dispatch(argv, COMMANDS, QUIET_STOP)


__all__ = ["COMMANDS", "main"]
