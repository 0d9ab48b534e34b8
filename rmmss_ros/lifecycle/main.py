"""Entry point of the ``perception_lifecycle_node`` console script (``python -m
rmmss_ros.lifecycle.main``): the managed perception node. Like ``rmmss_ros.node.main`` it arms the
start-up stop handlers before anything heavy is imported."""
from __future__ import annotations

import sys

from rmmss_core import early_stop


def main(args: list[str] | None = None) -> int:
    early_stop.install()
    try:
        from rmmss_ros.lifecycle import managed

        return managed.run(args)
    except early_stop.EarlyStop:
        return 0


if __name__ == "__main__":
    sys.exit(main())
