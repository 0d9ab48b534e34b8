"""Class lists and palettes of the datasets rmmss trains on.

DELIVER's 25 classes are also the synthetic world's label set, so models and palettes carry over.
Label files store raw ids; see `rmmss_core.data` for the remapping (DELIVER raw 1..25 -> 0..24).
"""
from __future__ import annotations

from dataclasses import dataclass

IGNORE_INDEX = 255

DELIVER_CLASSES: tuple[str, ...] = (
    "Building", "Fence", "Other", "Pedestrian", "Pole", "RoadLine", "Road", "SideWalk",
    "Vegetation", "Cars", "Wall", "TrafficSign", "Sky", "Ground", "Bridge", "RailTrack",
    "GroundRail", "TrafficLight", "Static", "Dynamic", "Water", "Terrain", "TwoWheeler", "Bus",
    "Truck",
)
# CARLA / DELIVER-style colours (RGB), one per class, in class order.
DELIVER_PALETTE: tuple[tuple[int, int, int], ...] = (
    (70, 70, 70), (100, 40, 40), (55, 90, 80), (220, 20, 60), (153, 153, 153), (157, 234, 50),
    (128, 64, 128), (244, 35, 232), (107, 142, 35), (0, 0, 142), (102, 102, 156), (220, 220, 0),
    (70, 130, 180), (81, 0, 81), (150, 100, 100), (230, 150, 140), (180, 165, 180),
    (250, 170, 30), (110, 190, 160), (170, 120, 50), (45, 60, 150), (145, 170, 100),
    (119, 11, 32), (0, 60, 100), (0, 0, 70),
)

# MUSES uses the 19 Cityscapes trainIds.
MUSES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
MUSES_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)


@dataclass(frozen=True)
class ClassSet:
    """A named class list with its palette (RGB per class)."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        try:
            return self.classes.index(class_name)
        except ValueError:
            raise KeyError(f"class {class_name!r} is not in {self.name}: {self.classes}") from None


DELIVER = ClassSet("deliver", DELIVER_CLASSES, DELIVER_PALETTE)
MUSES = ClassSet("muses", MUSES_CLASSES, MUSES_PALETTE)
CLASS_SETS = {c.name: c for c in (DELIVER, MUSES)}


def get_class_set(name: str) -> ClassSet:
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise KeyError(f"unknown class set {name!r}; known: {sorted(CLASS_SETS)}") from None
