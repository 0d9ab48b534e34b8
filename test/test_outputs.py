"""ROS-free output pieces: LabelInfo content, stamp-order release, "cannot use" vs "errors"."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from rmmss_core.classes import DELIVER
from rmmss_ros.outputs.label_info import UNLABELED_NAME, label_info_content, to_message
from rmmss_ros.outputs.release import StampOrderRelease
from rmmss_ros.outputs.usability import WAITING_FOR_CAMERA_INFO, split_unusable, waiting_text

MS = 1_000_000
PERIOD = 33 * MS


# ------------------------------------------------------------------------------- label_info
def test_label_info_from_the_spec():
    c = label_info_content(DELIVER.classes, 255, 0.4)
    ids = [i for i, _ in c.class_map]
    assert ids == [*range(len(DELIVER.classes)), 255]
    assert c.names[0] == DELIVER.classes[0] and c.names[255] == UNLABELED_NAME
    assert c.threshold == 0.4
    msg = to_message(c, lambda: SimpleNamespace(header=None, class_map=[], threshold=0.0),
                     lambda **kw: SimpleNamespace(**kw), header="h")
    assert msg.header == "h" and msg.threshold == pytest.approx(0.4)
    assert [(v.class_id, v.class_name) for v in msg.class_map] == list(c.class_map)


@pytest.mark.parametrize("names,ignore,threshold,match", [
    (("a", "a"), 255, 0.0, "repeated"),
    (("a", " "), 255, 0.0, "empty"),
    ((), 255, 0.0, "no class names"),
    (("a", "b"), 1, 0.0, "above the class ids"),
    (("a", "b"), 300, 0.0, "uint8"),
    (("a", "b"), 255, 1.5, "min_confidence"),
])
def test_label_info_refuses_what_a_consumer_could_not_use(names, ignore, threshold, match):
    with pytest.raises(ValueError, match=match):
        label_info_content(names, ignore, threshold)


def test_a_model_with_a_class_named_unlabeled_still_gets_unique_label_info():
    """A dataset that trains an 'unlabeled' class (review: the node refused to start with it):
    the no-class value takes another unique name instead."""
    c = label_info_content(("road", "unlabeled"), 255)
    assert c.names == {0: "road", 1: "unlabeled", 255: "unlabeled_255"}


# ------------------------------------------------------------------------------- release
def _warm(r: StampOrderRelease, n: int = 5, t0: int = 0) -> tuple[int, int]:
    """Feed ``n`` in-order frames (stamps t0, t0 + P, ...) released by polls; returns (next stamp, now)."""
    now = 0
    for i in range(n):
        r.push(t0 + i * PERIOD, i, now)
        now += PERIOD
        r.poll(now + r.window_ns)
    return t0 + n * PERIOD, now + r.window_ns


def test_in_order_stream_is_never_held_once_the_interval_is_known():
    r = StampOrderRelease("reorder", window_s=0.1)
    s, now = _warm(r)
    for i in range(20):
        assert r.push(s + i * PERIOD, ("f", i), now + i * PERIOD) == [("f", i)]
    assert r.pending() == 0 and r.late_dropped == 0


def test_first_frames_wait_at_most_the_window_then_leave_in_order():
    r = StampOrderRelease("reorder", window_s=0.1)
    assert r.push(2 * PERIOD, "b", 0) == []           # nothing known yet: held
    assert r.push(1 * PERIOD, "a", 10 * MS) == []     # an older one: held too, before b
    assert r.poll(99 * MS) == []
    assert r.poll(100 * MS) == ["a", "b"]             # b's window is up: a (older) goes first
    assert r.max_hold_ns == 100 * MS


def test_swapped_pairs_all_published_in_stamp_order():
    """Camera frames in swapped pairs (each even frame 33 ms late, inside the window): every frame
    is published and no stamp goes backwards (the issue's 44-of-90 case)."""
    r = StampOrderRelease("reorder", window_s=0.1)
    arrivals = []
    for k in range(0, 90, 2):
        arrivals += [(k + 1, (k + 1) * PERIOD), (k, (k + 1) * PERIOD + PERIOD)]
    out = []
    for stamp_i, t in arrivals:
        out += r.push(stamp_i * PERIOD, stamp_i, t)
        out += r.poll(t + 1)
    out += r.poll(10**12)
    assert out == sorted(out) == list(range(90))
    assert r.late_dropped == 0
    assert r.max_hold_ns <= r.window_ns


def test_a_frame_that_never_comes_costs_at_most_the_window():
    r = StampOrderRelease("reorder", window_s=0.1)
    s, now = _warm(r)
    assert r.push(s + PERIOD, "after-gap", now) == []        # s itself is missing: wait for it
    assert r.next_deadline_ns() == now + 100 * MS
    assert r.poll(now + 99 * MS) == []
    assert r.poll(now + 100 * MS) == ["after-gap"]
    assert r.push(s, "too-late", now + 120 * MS) == []       # would go backwards: dropped
    assert r.late_dropped == 1


def test_drop_policy_publishes_at_once_and_drops_the_late_one():
    dropped = []
    r = StampOrderRelease("drop", window_s=0.1, on_drop=lambda late, last: dropped.append((late, last)))
    assert r.push(2 * PERIOD, "b", 0) == ["b"]
    assert r.push(1 * PERIOD, "a", 1) == []
    assert r.push(2 * PERIOD, "b again", 2) == []           # the same stamp twice: dropped too
    assert r.push(3 * PERIOD, "c", 3) == ["c"]
    assert dropped == [(PERIOD, 2 * PERIOD), (2 * PERIOD, 2 * PERIOD)] and r.late_dropped == 2


def test_release_rejects_bad_settings_and_clears():
    with pytest.raises(ValueError, match="sync.late_frames"):
        StampOrderRelease("sometimes")
    with pytest.raises(ValueError, match="window"):
        StampOrderRelease("reorder", window_s=-1)
    r = StampOrderRelease("reorder")
    r.push(1, "x", 0)
    assert r.clear() == 1 and r.pending() == 0 and r.poll(10**12) == []


def test_release_is_thread_safe_and_never_goes_backwards():
    r = StampOrderRelease("reorder", window_s=0.05)
    out: list[int] = []
    lock = threading.Lock()

    def feed(offset):
        for i in range(offset, 400, 2):
            got = r.push(i * PERIOD, i, i * PERIOD)
            with lock:
                out.extend(got)

    threads = [threading.Thread(target=feed, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out += r.poll(10**15)
    assert out == sorted(out) and len(out) + r.late_dropped == 400


# ------------------------------------------------------------------------------- usability
def test_waiting_is_unusable_not_an_error():
    problems = {"lidar": waiting_text("lidar", WAITING_FOR_CAMERA_INFO), "depth": "depth: image has NaN or Inf"}
    unusable, errors = split_unusable(problems)
    assert unusable == {"lidar": "waiting for camera_info"}
    assert errors == {"depth": "depth: image has NaN or Inf"}
    # a malformed CameraInfo is the error; the LiDAR waiting on it says why
    unusable, errors = split_unusable({**problems, "camera_info": "camera_info: K has NaN"})
    assert "camera_info" in errors and "lidar" not in errors
    assert unusable["lidar"].startswith("no valid camera_info")
    with pytest.raises(KeyError):
        waiting_text("rgb", WAITING_FOR_CAMERA_INFO)



def test_an_older_set_inside_the_node_is_waited_for_beyond_the_window():
    """A slow worker: the older frame set is still queued when the window is up. It will come out,
    so the newer result waits for it (up to in_flight_wait_s) instead of making it late."""
    inside: set[int] = set()
    r = StampOrderRelease("reorder", window_s=0.1, in_flight=lambda: inside, in_flight_wait_s=1.0)
    s, now = _warm(r)
    inside.add(s)                                          # frame s queued, s + P processed first
    assert r.push(s + PERIOD, "newer", now) == []
    assert r.poll(now + 500 * MS) == []                    # beyond the window: still waiting for s
    inside.discard(s)
    assert r.push(s, "older", now + 600 * MS) == ["older", "newer"]
    assert r.late_dropped == 0
    # a set stuck inside never stalls the output for longer than in_flight_wait_s
    inside.add(s + 2 * PERIOD)
    assert r.push(s + 3 * PERIOD, "after-stuck", now + 700 * MS) == []
    assert r.poll(now + 1699 * MS) == [] and r.poll(now + 1700 * MS) == ["after-stuck"]
