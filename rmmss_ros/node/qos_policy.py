"""Which subscriptions a topic needs to receive from the publishers it has (ROS-free).

``qos.reliability: auto`` does what rosbag2 and rviz do: read the publishers' QoS
(``Node.get_publishers_info_by_topic``) and adapt, re-checked while the node runs so that
publishers started later are matched too. Rules (docs/ROS.md): a RELIABLE subscription never
connects to a BEST_EFFORT publisher, and a TRANSIENT_LOCAL one never to a VOLATILE publisher; a
BEST_EFFORT subscription to a RELIABLE publisher of large messages loses most of them. So:

- sensor topics: RELIABLE when every publisher is RELIABLE, else BEST_EFFORT; always VOLATILE
  (a late joiner must not receive stale images); no publisher yet: BEST_EFFORT (connects to all);
- camera_info (whatever ``qos.reliability`` says): drivers publish it latched (RELIABLE +
  TRANSIENT_LOCAL) once, or volatile at the camera rate. A TRANSIENT_LOCAL subscription (RELIABLE
  if all latched publishers are) receives the latched ones, plus a VOLATILE BEST_EFFORT one when
  volatile publishers exist too.

Profiles are (reliability, durability) pairs of strings: 'reliable'/'best_effort',
'volatile'/'transient_local'.
"""
from __future__ import annotations

from collections.abc import Iterable

Profile = tuple[str, str]
BEST_EFFORT, RELIABLE = "best_effort", "reliable"
VOLATILE, TRANSIENT_LOCAL = "volatile", "transient_local"


def sensor_profiles(mode: str, publishers: Iterable[Profile]) -> list[Profile]:
    """Subscriptions for a sensor topic. mode: 'auto', 'best_effort' or 'reliable' (explicit
    settings are kept as given). publishers: (reliability, durability) of each publisher."""
    if mode in (BEST_EFFORT, RELIABLE):
        return [(mode, VOLATILE)]
    if mode != "auto":
        raise ValueError(f"qos.reliability must be auto, best_effort or reliable, got {mode!r}")
    pubs = list(publishers)
    rel = RELIABLE if pubs and all(r == RELIABLE for r, _ in pubs) else BEST_EFFORT
    return [(rel, VOLATILE)]


def camera_info_profiles(publishers: Iterable[Profile]) -> list[Profile]:
    """Subscriptions for camera_info: latched and volatile publishers alike (see module doc)."""
    pubs = list(publishers)
    latched = [r for r, d in pubs if d == TRANSIENT_LOCAL]
    out: list[Profile] = []
    if latched:
        out.append((RELIABLE if all(r == RELIABLE for r in latched) else BEST_EFFORT, TRANSIENT_LOCAL))
    if not latched or any(d != TRANSIENT_LOCAL for _, d in pubs):
        out.append((BEST_EFFORT, VOLATILE))
    return out
