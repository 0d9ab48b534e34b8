"""Image sizes on the command line: always ``WIDTHxHEIGHT`` (``320x240`` is 320 wide, 240 high),
as in the README, in every command (synth, export, bench, info).

Internally rmmss keeps ``(height, width)`` (``PreprocessSpec.input_size``, tensors ``H x W``), so
``parse_size`` returns that order and ``format_size`` writes it back as ``WxH``.
"""
from __future__ import annotations

import argparse

HELP = "WIDTHxHEIGHT, e.g. 320x240 (320 wide, 240 high)"


def parse_size(text: str) -> tuple[int, int]:
    """``"320x240"`` (width x height) -> ``(240, 320)`` as (height, width); positive integers."""
    try:
        w, h = (int(v) for v in text.lower().strip().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must be WIDTHxHEIGHT, e.g. 320x240") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size {text!r}: width and height must be >= 1")
    return h, w


def format_size(hw: tuple[int, int] | list[int]) -> str:
    """``(height, width)`` -> ``"WIDTHxHEIGHT"``."""
    h, w = hw
    return f"{w}x{h}"
