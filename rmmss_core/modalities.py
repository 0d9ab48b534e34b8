"""The four modalities, their 15 non-empty subsets, and availability masks.

Modalities are always ``("rgb", "depth", "event", "lidar")`` in that order (letters R, D, E, L).
An availability mask is a bool tensor ``B x M`` (M = 4); True means the sensor is present for
that sample. Missing is never inferred from zeros: it is always this explicit mask.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import torch

MODALITIES: tuple[str, ...] = ("rgb", "depth", "event", "lidar")
NUM_MODALITIES = len(MODALITIES)
LETTERS: tuple[str, ...] = ("R", "D", "E", "L")

# Subsets as tuples of modality indices, ordered by size then lexicographically:
# R, D, E, L, RD, RE, RL, DE, DL, EL, RDE, RDL, REL, DEL, RDEL
SUBSETS: tuple[tuple[int, ...], ...] = tuple(
    combo for k in range(1, NUM_MODALITIES + 1)
    for combo in itertools.combinations(range(NUM_MODALITIES), k)
)


def subset_name(subset: Iterable[int] | Sequence[bool] | torch.Tensor) -> str:
    """Letters of a subset: indices ``(0, 1)`` or a bool mask ``[T, T, F, F]`` -> ``"RD"``."""
    idx = _as_indices(subset)
    if not idx:
        raise ValueError("the empty subset has no name: at least one modality must be present")
    return "".join(LETTERS[i] for i in idx)


def parse_subset(name: str) -> tuple[int, ...]:
    """``"RD"`` or ``"rgb,depth"`` -> ``(0, 1)``. Raises ValueError naming the bad token."""
    name = name.strip()
    if "," in name or name.lower() in MODALITIES:
        tokens = [t.strip().lower() for t in name.split(",") if t.strip()]
        bad = [t for t in tokens if t not in MODALITIES]
        if bad:
            raise ValueError(f"unknown modality {bad[0]!r} in {name!r}; expected some of {MODALITIES}")
        idx = sorted({MODALITIES.index(t) for t in tokens})
    else:
        bad = [c for c in name.upper() if c not in LETTERS]
        if bad or not name:
            raise ValueError(f"bad subset {name!r}: use letters of {''.join(LETTERS)} (e.g. 'RD')")
        idx = sorted({LETTERS.index(c) for c in name.upper()})
    if not idx:
        raise ValueError(f"subset {name!r} is empty")
    return tuple(idx)


def subset_mask(subset: Iterable[int] | str, batch: int = 1, device=None) -> torch.Tensor:
    """Availability mask ``B x M`` (bool) with the same subset for every sample."""
    idx = parse_subset(subset) if isinstance(subset, str) else tuple(subset)
    mask = torch.zeros(batch, NUM_MODALITIES, dtype=torch.bool, device=device)
    mask[:, list(idx)] = True
    return mask


def random_anymodal_mask(batch: int, generator: torch.Generator | None = None,
                         num_modalities: int = NUM_MODALITIES, device=None) -> torch.Tensor:
    """Any-modal dropout (AnySeg): per sample k ~ U{1..M}, then a uniform random subset of size k.

    Returns a bool mask ``B x M`` with at least one True per row.
    """
    ks = torch.randint(1, num_modalities + 1, (batch,), generator=generator)
    scores = torch.rand(batch, num_modalities, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)  # rank of each modality in a random order
    mask = ranks < ks[:, None]
    return mask.to(device) if device is not None else mask


def check_mask(mask: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Validate an availability mask; returns it as bool. Raises ValueError with the reason."""
    if mask.dim() != 2 or mask.shape[1] != NUM_MODALITIES:
        raise ValueError(f"availability mask must be B x {NUM_MODALITIES}, got {tuple(mask.shape)}")
    if batch is not None and mask.shape[0] != batch:
        raise ValueError(f"availability mask has {mask.shape[0]} rows for a batch of {batch}")
    mask = mask.bool()
    if (~mask.any(dim=1)).any():
        raise ValueError("every sample needs at least one available modality")
    return mask


def _as_indices(subset) -> tuple[int, ...]:
    if torch.is_tensor(subset):
        subset = subset.tolist()
    subset = list(subset)
    if subset and all(isinstance(v, bool) for v in subset):
        return tuple(i for i, v in enumerate(subset) if v)
    return tuple(sorted(int(i) for i in subset))


SUBSET_NAMES: tuple[str, ...] = tuple(subset_name(s) for s in SUBSETS)
