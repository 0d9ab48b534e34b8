"""Generator settings and the dataset plan (sequences -> splits, frames per sequence)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from rmmss_core.data.layout import SPLITS
from rmmss_core.data.synth.conditions import CONDITIONS
from rmmss_core.data.synth.rig import LidarModel, PinholeCamera, Rig
from rmmss_core.spec import PreprocessSpec

CONDITION_ORDER: tuple[str, ...] = tuple(sorted(CONDITIONS))  # stable ids for seeding


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a generated dataset (with the seed it is reproducible).

    frames: total frames written (over sequences and conditions); every sequence is rendered under
    every condition with the same ego path, frames_per_sequence = ceil(frames / (S * C)).
    """

    frames: int = 1000
    width: int = 320
    height: int = 240
    sequences: int = 20
    conditions: tuple[str, ...] = ("cloud", "fog", "night", "rain", "sun")
    splits: tuple[tuple[str, float], ...] = (("train", 0.7), ("val", 0.15), ("test", 0.15))
    seed: int = 0
    fps: float = 10.0
    hfov_deg: float = 90.0
    lidar: LidarModel = field(default_factory=LidarModel)
    event_substeps: int = 4  # renders per frame interval for the event camera
    event_threshold: float = 0.25
    event_mismatch: float = 0.03

    def __post_init__(self):
        if self.frames < 1 or self.sequences < 1:
            raise ValueError(f"frames and sequences must be >= 1, got {self.frames}, {self.sequences}")
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions or len(set(self.conditions)) != len(self.conditions):
            raise ValueError(f"conditions must be distinct names from {sorted(CONDITIONS)}, "
                             f"got {list(self.conditions)}")
        names = [s for s, _ in self.splits]
        if any(s not in SPLITS for s in names) or any(f < 0 for _, f in self.splits) \
                or sum(f for _, f in self.splits) <= 0:
            raise ValueError(f"splits must be fractions >= 0 of {SPLITS}, got {dict(self.splits)}")
        if min(self.width, self.height) < 32:
            raise ValueError(f"image size must be at least 32x32, got {self.width}x{self.height}")
        if self.fps <= 0 or self.event_substeps < 1:
            raise ValueError(f"fps must be > 0 and event_substeps >= 1, got {self.fps}, "
                             f"{self.event_substeps}")

    @property
    def frames_per_sequence(self) -> int:
        return math.ceil(self.frames / (self.sequences * len(self.conditions)))

    @property
    def rig(self) -> Rig:
        return Rig(PinholeCamera.from_fov(self.width, self.height, self.hfov_deg), self.lidar)

    @property
    def spec(self) -> PreprocessSpec:
        """The encodings the modality PNGs are written with (input size = image size). The synthetic
        LiDAR's intensity is already in [0, 1] (lidar_sim), so models trained on it serve "unit"."""
        spec = PreprocessSpec(input_size=(self.height, self.width))
        return replace(spec, lidar=replace(spec.lidar, intensity_units="unit"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["splits"] = dict(self.splits)
        d["conditions"] = list(self.conditions)
        d["frames_per_sequence"] = self.frames_per_sequence
        return d


@dataclass(frozen=True)
class SequencePlan:
    index: int
    name: str
    split: str


def plan_sequences(cfg: SynthConfig) -> list[SequencePlan]:
    """Assign sequences to splits by largest remainder; every split with a fraction > 0 gets at
    least one sequence when there are enough sequences."""
    total = sum(f for _, f in cfg.splits)
    want = [(s, f / total * cfg.sequences) for s, f in cfg.splits]
    counts = {s: int(math.floor(x)) for s, x in want}
    for s, _x in sorted(want, key=lambda sx: sx[1] - math.floor(sx[1]), reverse=True):
        if sum(counts.values()) < cfg.sequences:
            counts[s] += 1
    positive = [s for s, f in cfg.splits if f > 0]
    for s in positive:  # steal from the largest split for empty ones
        if counts[s] == 0 and cfg.sequences >= len(positive):
            big = max(counts, key=lambda k: counts[k])
            counts[big] -= 1
            counts[s] += 1
    plans, i = [], 0
    for s, _ in cfg.splits:
        for _ in range(counts[s]):
            plans.append(SequencePlan(i, f"synth_{i:03d}", s))
            i += 1
    return plans
