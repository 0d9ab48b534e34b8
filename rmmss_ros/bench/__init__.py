"""The ROS package's sections of ``make bench`` (the runner is ``rmmss_cli.bench``): ``node.py``
(per-frame CPU cost of the node's path beside rclpy deserialisation), ``inputs.py`` (input
conversions), ``outputs.py`` (what ~/confidence costs), ``sync.py`` (the synchroniser beside message_filters where installed), and
``gpu_node.py`` (the node's step of ``rmmss gpu-check``, handed to the core's runner)."""

# name -> module exposing ``run(quick: bool) -> rmmss_core.bench.BenchReport``
BENCHMARKS: dict[str, str] = {
    "node": "rmmss_ros.bench.node",
    "outputs": "rmmss_ros.bench.outputs",
}
