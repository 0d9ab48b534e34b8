"""The synthetic street world: procedural scenes ray-cast with Open3D into RGB, depth, LiDAR,
events and exact labels, written in DELIVER's layout with the raw sensor streams.

``generate(SynthConfig(...), out_dir, workers=2)`` or ``rmmss synth --out DIR``.
"""
from rmmss_core.data.synth.conditions import CONDITIONS, Condition, get_condition
from rmmss_core.data.synth.config import SynthConfig, plan_sequences
from rmmss_core.data.synth.generate import generate

__all__ = ["CONDITIONS", "Condition", "SynthConfig", "generate", "get_condition", "plan_sequences"]
