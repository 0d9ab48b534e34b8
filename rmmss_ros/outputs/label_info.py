"""``vision_msgs/LabelInfo`` content from the model's spec.

vision_msgs (ros-perception/vision_msgs, msg/LabelInfo.msg): ``std_msgs/Header header``,
``VisionClass[] class_map`` (``uint16 class_id``, ``string class_name``) and ``float32 threshold``
("the value between 0-1 used as confidence threshold for the inference"). Consumers such as Nav2's
semantic segmentation layer (kiwicampus/semantic_segmentation_layer, README "Required Topics":
labels reliable + transient local, read before any mask) map class names in their configuration
to the ids in the mask through it.

Content: one entry per class of the spec (id = index into the logits, name = ``class_names[id]``)
and the spec's ``ignore_index`` (255) named ``unlabeled`` (``unlabeled_255`` when the model has a
class named ``unlabeled``): the value of pixels outside the image
after a ``crop`` resize and of pixels below ``output.min_confidence``. ``threshold`` is
``output.min_confidence`` (0 when off).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rmmss_core.deploy.confidence import check_min_confidence

UNLABELED_NAME = "unlabeled"


@dataclass(frozen=True)
class LabelInfoContent:
    """``class_map``: ((id, name), ...) in id order, the unlabeled value last; ``threshold`` in [0, 1]."""

    class_map: tuple[tuple[int, str], ...]
    threshold: float

    @property
    def names(self) -> dict[int, str]:
        return dict(self.class_map)


def label_info_content(class_names: tuple[str, ...] | list[str], ignore_index: int = 255,
                       min_confidence: float = 0.0) -> LabelInfoContent:
    """The content for a model with ``class_names`` (the spec's) whose masks use ``ignore_index``
    for "no class". Raises ValueError for names that a consumer could not tell apart (empty or
    repeated), an ``ignore_index`` that is also a class id or does not fit uint8, or a threshold
    outside [0, 1]."""
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("the model's spec has no class names")
    empty = [i for i, n in enumerate(names) if not n.strip()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if empty or dup:
        raise ValueError(f"class names must be non-empty and unique for label_info; empty at ids {empty}, repeated {dup}")
    if not 0 <= ignore_index <= 255 or ignore_index < len(names):
        raise ValueError(f"ignore_index {ignore_index} must be a uint8 value above the class ids 0..{len(names) - 1}")
    threshold = check_min_confidence(min_confidence, "output.min_confidence")
    return LabelInfoContent(tuple(enumerate(names)) + ((int(ignore_index), unlabeled_name(names, ignore_index)),),
                            threshold)


def unlabeled_name(class_names: list[str], ignore_index: int) -> str:
    """The name of the "no class" value: ``unlabeled``, or ``unlabeled_<value>`` when the model
    has a class of that name (datasets that train one), so that every name stays unique."""
    return UNLABELED_NAME if UNLABELED_NAME not in class_names else f"{UNLABELED_NAME}_{int(ignore_index)}"


def to_message(content: LabelInfoContent, label_info_cls: Callable[[], Any], vision_class_cls: Callable[..., Any],
               header: Any | None = None) -> Any:
    """A ``vision_msgs/LabelInfo`` built with the given message classes (passed in, so this module
    imports no ROS package)."""
    msg = label_info_cls()
    if header is not None:
        msg.header = header
    msg.class_map = [vision_class_cls(class_id=int(i), class_name=n) for i, n in content.class_map]
    msg.threshold = float(content.threshold)
    return msg
