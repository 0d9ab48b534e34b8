"""Quiet SIGINT/SIGTERM during a program's start-up (stdlib only, so it can be installed first).

A long-running command (``perception_node``, ``rmmss play``) spends its first seconds importing
torch and rclpy and loading a model. With Python's default actions a SIGTERM there killed the
process with exit code 143 (and SIGINT printed a KeyboardInterrupt traceback), although a stop
that early is an ordinary request: ``ros2 launch`` shutting down right after start, a supervisor
restarting. ``install()`` at the very top of ``main()`` (before the heavy imports, which the entry
points do lazily) makes both signals raise ``EarlyStop`` in the main thread until ``disarm()``;
``main()`` catches it and exits 0 without a traceback. ``disarm()`` is called once the program's
own handling is in place (rclpy's signal handlers + spin for the node, the player's stop event);
a disarmed handler does nothing, so when rclpy chains to it (it calls the handler it replaced)
rclpy's own shutdown path decides.

Unavoidable window: the interpreter's start-up before ``main()`` runs: Python itself, the
``site`` hooks (``ros_wheels_bootstrapper`` re-executes the interpreter once there to set the
ROS library paths) and the entry point's few light imports: about 0.1 s on this machine. A signal
in that window still has the default action (SIGTERM: exit 143). A signal the parent set to be
ignored (``nohup``; SIGINT for ``cmd &`` in a non-interactive shell) stays ignored, as Python
itself does for SIGINT, until rclpy installs its own handlers.
"""
from __future__ import annotations

import signal
import threading

_armed = False


class EarlyStop(KeyboardInterrupt):
    """Raised in the main thread by SIGINT/SIGTERM while start-up is armed (exit quietly, 0)."""


def _handle(signum: int, frame) -> None:
    del frame
    if _armed:
        raise EarlyStop(f"signal {signum} during start-up")


def install() -> bool:
    """Arm: SIGINT/SIGTERM raise ``EarlyStop`` from now on. False (nothing done) outside the
    main thread, where Python cannot set signal handlers."""
    global _armed
    if threading.current_thread() is not threading.main_thread():
        return False
    _armed = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # ignored by the parent (nohup, `cmd &`): kept
            signal.signal(sig, _handle)
    return True


def disarm() -> None:
    """Start-up is over: the handlers stay (rclpy may chain to them) but do nothing."""
    global _armed
    _armed = False


def armed() -> bool:
    return _armed
