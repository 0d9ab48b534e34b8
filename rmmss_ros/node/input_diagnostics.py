"""The ``<node>: inputs`` diagnostic status (issue #22), ROS-free: which image transport and which
extrinsic source each sensor uses, and what is missing ("no transform from os_lidar to
camera_color_optical_frame"). Level: the worst extrinsic (WARN: a default parameter stands in
for a missing chain with ``extrinsics.source: auto``; ERROR: no chain with ``tf``, the sensor is
missing)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rmmss_ros.node.diagnostics import OK, Status
from rmmss_ros.pipeline.inputs import RobotInputs


def inputs_status(node_name: str, inputs: RobotInputs, transports: Mapping[str, Any], tf_note: str) -> Status:
    values = {"extrinsics.source": inputs.extrinsics.source, "tf": tf_note,
              "depth_camera_info": "received" if inputs.depth_camera_info is not None else "none"}
    for m, r in transports.items():
        values[f"{m}.transport"] = f"{r.transport} ({r.topic})"
    status = inputs.extrinsics.status()
    level, worst = OK, []
    for m, st in sorted(status.items()):
        values[f"{m}.extrinsic"] = st.text(m)
        if st.level:
            worst.append(st.text(m))
        level = max(level, st.level)
    msg = "; ".join(worst) if worst else "extrinsics: " + (
        ", ".join(f"{m} from {st.source}" for m, st in sorted(status.items())) or "none used yet")
    return Status(f"{node_name}: inputs", level, msg, "", values)
