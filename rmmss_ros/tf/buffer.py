"""A ROS-free transform buffer with tf2's rules (ros2/geometry2, read, not copied):

* every child frame has one cache (tf2/src/buffer_core.cpp ``setTransformImpl``): the first
  transform received for it decides whether it is static (``/tf_static``: one value, valid at
  every time, replaced by newer ones: tf2/src/static_cache.cpp) or dynamic (``/tf``: a time cache
  of ``cache_time_s``, default 10 s as tf2's BufferCore, sorted by stamp, exact duplicates
  dropped, older data pruned: tf2/src/cache.cpp @04e7636 ``insertData`` / ``pruneList``);
* a dynamic link is looked up at a stamp as ``TimeCache::findClosest`` / ``getData`` do: the
  exact value at the earliest / latest stamp, linear interpolation of the translation and slerp of
  the rotation between the two surrounding values, and an extrapolation error outside the cached
  span (a single value serves its own stamp only); stamp ``None`` = the latest time common to
  every dynamic link of the chain (tf2's time 0);
* ``lookup(target, source, stamp)`` walks both frames up to their common ancestor and composes
  ``T_target_source`` (maps points in ``source`` to ``target``: tf2's ``lookupTransform``).
  Frame ids are compared without a leading ``/`` (tf2 refuses them; a robot's bag from ROS 1
  has them).

Errors are :class:`TransformError` whose text names both frames and what is missing
("no transform from os_lidar to camera_color_optical_frame: frame os_lidar does not exist").
Input is plain data or a TFMessage (rclpy or rosbags: ``transforms`` of TransformStamped).
"""
from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rmmss_ros.tf.transform import Rigid, interpolate

DEFAULT_CACHE_TIME_S = 10.0
# the topics a node subscribes (tf2_msgs/msg/TFMessage), with tf2_ros' listener QoS
# (ros2/geometry2 tf2_ros/include/tf2_ros/qos.hpp): /tf_static KEEP_LAST 100, RELIABLE,
# TRANSIENT_LOCAL (static publishers latch and publish once); /tf KEEP_LAST 100, RELIABLE, VOLATILE
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
TF_QOS_DEPTH = 100
MAX_CHAIN = 100  # tf2's MAX_GRAPH_DEPTH guard against loops


class TransformError(LookupError):
    """No transform between two frames; the text names both frames and the reason."""


class TransformExtrapolationError(TransformError):
    """The frames are connected, but a dynamic link has no data at the requested stamp (outside the
    cached span)."""


def frame_name(frame_id: Any) -> str:
    return str(frame_id).lstrip("/")


@dataclass
class _Cache:
    """One child frame's link to its parent: static (a single value) or a time cache."""

    static: bool
    stamps: list[int] = field(default_factory=list)
    values: list[tuple[str, Rigid]] = field(default_factory=list)  # (parent, transform) per stamp

    def insert(self, stamp: int, parent: str, tr: Rigid, max_ns: int) -> bool:
        if self.static:
            self.stamps, self.values = [stamp], [(parent, tr)]
            return True
        latest = self.stamps[-1] if self.stamps else None
        if latest is not None and stamp < latest - max_ns:
            return False  # older than the cache keeps (tf2 drops it too)
        i = bisect.bisect_right(self.stamps, stamp)
        j = i
        while j > 0 and self.stamps[j - 1] == stamp:  # exact duplicates are not inserted twice
            p, old = self.values[j - 1]
            if p == parent and np.array_equal(old.t, tr.t) and np.array_equal(old.q, tr.q):
                return True
            j -= 1
        self.stamps.insert(i, stamp)
        self.values.insert(i, (parent, tr))
        newest = self.stamps[-1]
        k = bisect.bisect_left(self.stamps, newest - max_ns)
        if k:
            del self.stamps[:k], self.values[:k]
        return True

    def parent_at(self, stamp: int | None) -> str:
        return self.values[-1][0] if (self.static or stamp is None) else self._find(stamp)[0][0]

    def _find(self, stamp: int) -> tuple[tuple[str, Rigid], tuple[str, Rigid] | None, float]:
        s = self.stamps
        if len(s) == 1:
            if s[0] == stamp:
                return self.values[0], None, 0.0
            raise _Extrapolation(f"lookup would require extrapolation at time {_sec(stamp)}, but only time "
                                 f"{_sec(s[0])} is in the buffer")
        if stamp == s[-1]:
            return self.values[-1], None, 0.0
        if stamp == s[0]:
            return self.values[0], None, 0.0
        if stamp > s[-1]:
            raise _Extrapolation(f"lookup would require extrapolation into the future: requested time "
                                 f"{_sec(stamp)} but the latest data is at time {_sec(s[-1])}")
        if stamp < s[0]:
            raise _Extrapolation(f"lookup would require extrapolation into the past: requested time "
                                 f"{_sec(stamp)} but the earliest data is at time {_sec(s[0])}")
        i = bisect.bisect_right(s, stamp)  # s[i - 1] <= stamp < s[i]
        older, newer = self.values[i - 1], self.values[i]
        ratio = (stamp - s[i - 1]) / (s[i] - s[i - 1])
        return older, newer, ratio

    def get(self, stamp: int | None) -> tuple[str, Rigid]:
        if self.static or stamp is None:
            return self.values[-1]
        older, newer, ratio = self._find(stamp)
        if newer is None or newer[0] != older[0]:  # a reparented link is not interpolated
            return older
        return older[0], interpolate(older[1], newer[1], ratio)


class _Extrapolation(Exception):
    pass


def _sec(ns: int) -> str:
    return f"{ns / 1e9:.6f}"


class TransformBuffer:
    """Static and dynamic transforms; :meth:`lookup` composes chains (thread-safe)."""

    def __init__(self, cache_time_s: float = DEFAULT_CACHE_TIME_S):
        self.cache_time_ns = int(round(cache_time_s * 1e9))
        self._caches: dict[str, _Cache] = {}
        self._lock = threading.Lock()
        self.warnings: list[str] = []  # data problems, each said once (append-only; see take_warnings)
        self._taken = 0
        self.static_version = 0  # bumped by every static transform (cached static chains expire)
        self._warned: set[str] = set()

    # ------------------------------------------------------------------------------ input
    def set_transform(self, parent: str, child: str, stamp_ns: int, translation: Any, quaternion: Any,
                      static: bool) -> bool:
        """Add one transform (``parent`` <- ``child``). Returns False when it is refused (self
        transform, bad values, older than the cache keeps); the reason goes to :attr:`warnings`."""
        parent, child = frame_name(parent), frame_name(child)
        what = f"transform {parent} -> {child}"
        if not parent or not child or parent == child:
            self._warn(f"{what}: ignored (empty frame id or a frame's transform to itself)")
            return False
        try:
            tr = Rigid.of(translation, quaternion, what)
        except ValueError as e:
            self._warn(f"{e}; ignored")
            return False
        with self._lock:
            cache = self._caches.get(child)
            if cache is None:
                cache = self._caches[child] = _Cache(static=bool(static))
            elif cache.static != bool(static):
                self._warn(f"{what}: frame {child} was first received on {'/tf_static' if cache.static else '/tf'}; "
                           f"its transforms on {'/tf_static' if static else '/tf'} are treated the same way (as tf2 does)")
            if cache.static:
                self.static_version += 1
            return cache.insert(int(stamp_ns), parent, tr, self.cache_time_ns)

    def add_message(self, msg: Any, static: bool) -> int:
        """A TFMessage (``transforms`` of TransformStamped) -> the number of transforms added."""
        n = 0
        for ts in msg.transforms:
            tr, rot = ts.transform.translation, ts.transform.rotation
            stamp = int(ts.header.stamp.sec) * 1_000_000_000 + int(ts.header.stamp.nanosec)
            n += self.set_transform(ts.header.frame_id, ts.child_frame_id, stamp, (tr.x, tr.y, tr.z),
                                    (rot.x, rot.y, rot.z, rot.w), static)
        return n

    def _warn(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            self.warnings.append(text)

    def take_warnings(self) -> list[str]:
        """The warnings not taken yet (a refused transform: bad quaternion, NaN, a frame's transform
        to itself...), for the node's log and replay's report. Safe beside :meth:`set_transform` on
        another thread (the list only grows)."""
        n = len(self.warnings)
        out, self._taken = self.warnings[self._taken:n], n
        return out

    # ------------------------------------------------------------------------------ queries
    def frames(self) -> set[str]:
        with self._lock:
            return set(self._caches) | {c.values[-1][0] for c in self._caches.values() if c.values}

    def is_static_chain(self, target: str, source: str) -> bool:
        """True when every link between the two frames is static (the chain can be cached)."""
        with self._lock:
            path = self._path(frame_name(target), frame_name(source), None)
            return all(self._caches[f].static for f, _ in path[0] + path[1])

    def lookup(self, target: str, source: str, stamp_ns: int | None = None) -> np.ndarray:
        """``T_target_source`` 4 x 4 float64 at ``stamp_ns`` (None: the latest common time).
        Raises :class:`TransformError` naming both frames and what is missing."""
        return self.lookup_rigid(target, source, stamp_ns).matrix()

    def lookup_rigid(self, target: str, source: str, stamp_ns: int | None = None) -> Rigid:
        target, source = frame_name(target), frame_name(source)
        if target == source:
            return Rigid.identity()
        with self._lock:
            try:
                if stamp_ns is None:
                    stamp_ns = self._latest_common(target, source)
                up_source, up_target = self._path(target, source, stamp_ns)
                T_root_source = Rigid.identity()
                for _, tr in reversed(up_source):
                    T_root_source = T_root_source * tr
                T_root_target = Rigid.identity()
                for _, tr in reversed(up_target):
                    T_root_target = T_root_target * tr
            except _Extrapolation as e:
                raise TransformExtrapolationError(f"no transform from {source} to {target}: {e}") from None
            except TransformError as e:
                raise TransformError(f"no transform from {source} to {target}: {e}") from None
        return T_root_target.inverse() * T_root_source

    def _chain_up(self, frame: str, stamp: int | None) -> list[tuple[str, Rigid, str]]:
        """(child, T_parent_child, parent) from ``frame`` up to its root at ``stamp``."""
        out = []
        f = frame
        for _ in range(MAX_CHAIN):
            cache = self._caches.get(f)
            if cache is None:
                return out
            parent, tr = cache.get(stamp)
            out.append((f, tr, parent))
            f = parent
        raise TransformError(f"the frames above {frame} form a loop")

    def _path(self, target: str, source: str, stamp: int | None) -> tuple[list, list]:
        """The links from ``source`` and from ``target`` up to (not including) their common ancestor."""
        known = set(self._caches) | {c.values[-1][0] for c in self._caches.values() if c.values}
        for f in (source, target):
            if f not in known:
                have = ", ".join(sorted(known)) or "none yet"
                raise TransformError(f"frame {f} does not exist (frames: {have})")
        up_s = self._chain_up(source, stamp)
        up_t = self._chain_up(target, stamp)
        anc_s = [source] + [p for _, _, p in up_s]
        anc_t = [target] + [p for _, _, p in up_t]
        common = next((a for a in anc_s if a in set(anc_t)), None)
        if common is None:
            raise TransformError(f"{source} (root {anc_s[-1]}) and {target} (root {anc_t[-1]}) are not part "
                                 "of the same tree")
        i, j = anc_s.index(common), anc_t.index(common)
        return [(c, tr) for c, tr, _ in up_s[:i]], [(c, tr) for c, tr, _ in up_t[:j]]

    def _latest_common(self, target: str, source: str) -> int | None:
        """tf2's getLatestCommonTime: the oldest of the latest stamps of the dynamic links of the
        chain (None when all of them are static)."""
        up_s, up_t = self._path(target, source, None)
        latest = [self._caches[c].stamps[-1] for c, _ in up_s + up_t if not self._caches[c].static]
        return min(latest) if latest else None

    def span(self, child: str) -> tuple[int, int] | None:
        """(earliest, latest) stamps cached for ``child``'s link (None: unknown or static)."""
        with self._lock:
            c = self._caches.get(frame_name(child))
            if c is None or c.static:
                return None
            return c.stamps[0], c.stamps[-1]
