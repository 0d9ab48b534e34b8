"""The commands the ROS package adds to ``rmmss`` (assembled by :mod:`rmmss_cli`): name ->
(module with ``add_arguments(parser)`` and ``run(args) -> int``, one-line help). Modules are
imported only when their command runs.

``gpu-check`` replaces the core's entry of the same name: the same command, given the node
pipeline's step (``rmmss_ros.bench.gpu_node``) by this package.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "gpu-check": ("rmmss_ros.bench.gpu_check", "every CUDA line measured in one command: docs/bench/gpu.md"),
    "bag": ("rmmss_ros.bag.cli", "rosbag2 tools: write a sequence (mcap or sqlite3), compress, info"),
    "replay": ("rmmss_ros.replay.cli", "evaluate a bag offline through the node's pipeline, with sensor dropouts"),
    "play": ("rmmss_ros.play.cli", "publish a bag live over DDS with its original timing"),
    "demo": ("rmmss_ros.demo.cli", "the main job: node + sample bag + sensor failure, live over DDS"),
}

# commands whose stop by SIGINT/SIGTERM is ordinary, also during their start-up (exit 0, no traceback)
QUIET_STOP = frozenset({"play"})
