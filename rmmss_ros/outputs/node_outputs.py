"""The node's output extras in one object, ROS-free (message classes come in as arguments; the
rclpy shell creates the publishers): ``~/confidence`` (mono8), ``~/label_info``
(vision_msgs/LabelInfo, reliable + transient local), the expected quality and the "unusable" split
of ``~/used_modalities``, the stamp-order release, and the output diagnostics' extra values.

``vision_msgs`` comes from the message underlay (on a robot ``/opt/ros/jazzy``); without it the node
runs and says once that label_info is off (``label_types`` None).
"""
from __future__ import annotations

from typing import Any

from rmmss_ros.conversions import fill_image
from rmmss_ros.outputs.label_info import label_info_content, to_message
from rmmss_ros.outputs.quality import Expected, ExpectedQuality, quality_warning
from rmmss_ros.outputs.release import StampOrderRelease
from rmmss_ros.outputs.usability import split_unusable

LABEL_INFO_OFF = ("label_info is off: vision_msgs is not installed (on a robot: apt install "
                  "ros-jazzy-vision-msgs; from source: the message underlay, see README)")


def confidence_problem(values: dict[str, Any], backend: Any, model: Any) -> str | None:
    """Why ``backend`` cannot serve the confidence the settings need (``output.confidence``, or
    ``output.min_confidence`` > 0, which masks by it), else None: checked at start by the node and
    by ``rmmss replay``, never frame after frame."""
    if getattr(backend, "provides_confidence", True):
        return None
    need = (["output.confidence"] if values.get("output.confidence") else []) + \
        (["output.min_confidence"] if float(values.get("output.min_confidence") or 0.0) > 0 else [])
    if not need:
        return None
    return (f"model {model} gives no confidence (an ONNX file exported before it existed), which "
            f"{' and '.join(need)} need{'s' if len(need) == 1 else ''}: re-export it with `rmmss export`, "
            f"or set {' and '.join(f'{n} ' + ('false' if n == 'output.confidence' else '0') for n in need)}")


class NodeOutputs:
    """Everything the issue #23 outputs need, made once at configure.

    ``values``: the node's parameter values; ``spec``: the model's PreprocessSpec; ``enabled``: the
    enabled sensors (the "all" of the expected quality); ``logger``: the node's logger;
    ``label_types``: (LabelInfo, VisionClass) or None without vision_msgs; ``in_flight``: stamps of
    the frame sets inside the node not yet released (StampOrderRelease waits for older ones).
    """

    def __init__(self, values: dict[str, Any], spec: Any, enabled: tuple[str, ...], logger: Any,
                 label_types: tuple[Any, Any] | None, in_flight: Any = None):
        self.values = values
        self.logger = logger
        self.confidence = bool(values["output.confidence"])
        self.min_confidence = float(values["output.min_confidence"])
        self.labels = label_info_content(spec.class_names, spec.ignore_index, self.min_confidence)
        try:
            self.quality = ExpectedQuality.from_model(values["model_path"], enabled, values["output.quality_floor"])
        except Exception as e:  # noqa: BLE001 - a malformed table must not stop the masks: say so, use "unknown"
            logger.warning(f"expected quality unknown: cannot read the table stored with {values['model_path']}: {e}")
            self.quality = ExpectedQuality(None, enabled, values["output.quality_floor"])
        logger.info(self.quality.describe_table())
        self.release = StampOrderRelease(values["sync.late_frames"], values["sync.reorder_window_s"],
                                         on_drop=self._on_late, in_flight=in_flight)
        self.pub_confidence: Any = None  # set by the shell when it creates the publishers
        self.pub_label_info: Any = None
        self.label_types = label_types
        if label_types is None:
            logger.warning(LABEL_INFO_OFF)
        self._late_said = False
        self.last_expected: Expected | None = None

    def _on_late(self, late_ns: int, last_ns: int) -> None:
        if not self._late_said:  # said once; the count is in the output diagnostics (late_dropped)
            self._late_said = True
            self.logger.warning(
                f"dropped a mask stamped {(last_ns - late_ns) / 1e6:.1f} ms before the last published one "
                f"(sync.late_frames={self.values['sync.late_frames']}): mask stamps never go backwards; "
                "frames later than sync.reorder_window_s cannot be put back in order")

    def set_floor(self, floor: float) -> None:
        """``output.quality_floor`` changed at run time."""
        self.quality = ExpectedQuality(self.quality.table, self.quality.all_modalities, floor)

    # -- messages -------------------------------------------------------------------------
    def publish_label_info(self, stamp: Any, frame_id: str) -> None:
        """Latched: a late subscriber (transient local) still gets it."""
        if self.pub_label_info is None or self.label_types is None:
            return
        msg = to_message(self.labels, *self.label_types)
        msg.header.stamp, msg.header.frame_id = stamp, frame_id
        self.pub_label_info.publish(msg)

    def confidence_message(self, result: Any, header: Any, image_cls: Any) -> tuple[Any, Any] | None:
        """(publisher, mono8 Image with the mask's header) or None when off or not computed."""
        conf = getattr(result, "confidence", None)
        if self.pub_confidence is None or conf is None:
            return None
        msg = fill_image(image_cls(), conf, "mono8")
        msg.header = header
        return self.pub_confidence, msg

    # -- ~/used_modalities ----------------------------------------------------------------
    def used_fields(self, used: tuple[str, ...], errors: dict[str, str]) -> dict[str, Any]:
        """``unusable`` / ``errors`` split and the ``expected_quality`` of the subset used."""
        unusable, real_errors = split_unusable(errors)
        expected = self.quality.of(used)
        self.last_expected = expected
        return {"unusable": unusable, "errors": real_errors, "expected_quality": expected.as_dict()}

    def diagnostics(self) -> tuple[dict[str, str], str | None]:
        """Values for the output status and the WARN text when below the floor."""
        e = self.last_expected
        values = {"expected_quality": e.text if e else "", "late_dropped": str(self.release.late_dropped),
                  "held_for_order": str(self.release.held_total),
                  "max_hold_ms": f"{self.release.max_hold_ns / 1e6:.1f}"}
        return values, quality_warning(e)
