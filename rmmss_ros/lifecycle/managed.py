"""``perception_lifecycle_node`` (``python -m rmmss_ros.lifecycle.main``; launch: ``lifecycle:=true``):
the perception node as a ROS 2 managed node (rclpy.lifecycle), for ``ros2 lifecycle set`` and
Nav2-style lifecycle managers. The plain ``perception_node`` stays as it was.

States and what the node holds in each (design.ros2.org "Managed nodes"):

- **unconfigured** (start): parameters declared, nothing loaded, no topic.
- ``configure``: reads and checks the parameters and loads the model (the plain node's start-up
  work). Any problem (a bad parameter, a missing or corrupt model file, an absent runtime) fails the
  transition: the node stays **unconfigured** and logs the reason (ERROR); fix it (``ros2 param
  set``) and configure again.
- **inactive**: model loaded, publishers created, no subscription, nothing published.
- ``activate``: subscribes to the sensors, starts the worker and timers, publishes
  ``~/label_info`` (transient local) -> **active**: masks flow.
- ``deactivate``: unsubscribes, stops the worker and timers, discards held results; the model
  stays loaded (re-activating takes milliseconds).
- ``cleanup``: unloads the model and destroys the publishers -> unconfigured.
- ``shutdown`` (from any of the three): releases everything -> **finalized**; the process then
  exits with code 0. SIGINT/SIGTERM also end it with 0.

Nav2's ``lifecycle_manager`` manages the node like its own servers: add ``perception_node`` to its
``node_names`` and set ``bond_timeout: 0.0`` (rclpy nodes hold no bond: with a non-zero timeout the
manager waits for a heartbeat that never comes and fails the bring-up)::

    lifecycle_manager_perception:
      ros__parameters:
        autostart: true
        node_names: ["perception_node"]
        bond_timeout: 0.0

Parameters that are read at start-up in the plain node are read at ``configure`` here, so they may
be changed while unconfigured.
"""
from __future__ import annotations

import time
from functools import partial
from typing import Any

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from rmmss_ros.node.perception_node import PerceptionNode, StartupError

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class ManagedPerceptionNode(LifecycleNodeMixin, PerceptionNode):
    """The perception node whose start-up work is split over the lifecycle transitions."""

    def __init__(self, **kwargs: Any):
        PerceptionNode.__init__(self, start=False, **kwargs)
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True)
        self._service_change_state.callback = partial(self._change_state_or_refuse,
                                                      self._service_change_state.callback)
        self.finalized = False
        self.last_error = ""

    def _change_state_or_refuse(self, serve: Any, req: Any, resp: Any) -> Any:
        """``~/change_state`` with a transition the current state does not have (``configure``
        twice, ``activate`` while unconfigured) answered ``success: false`` and a WARN, as
        rclcpp's lifecycle node does; rclpy (Jazzy) lets rcl's RCLError escape the service
        callback, which ended the whole process with a traceback."""
        try:
            return serve(req, resp)
        except RCLError:
            state = self._state_machine.current_state[1]
            self.get_logger().warning(f"change_state: no transition {req.transition.label or req.transition.id} "
                                      f"from state {state}; nothing changed")
            resp.success = False
            return resp

    # -- transitions (rclpy calls them on the executor thread that serves change_state) -----
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configure()
        except StartupError as e:
            return self._fail("configure", e)
        except Exception as e:  # noqa: BLE001 - anything else: stay unconfigured, say why, hold nothing
            self.cleanup()
            return self._fail("configure", e, trace=True)
        self.get_logger().info("configured: model loaded, publishers ready (activate to start)")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.activate()
        except Exception as e:  # noqa: BLE001
            self.deactivate()
            return self._fail("activate", e, trace=True)
        self.get_logger().info("activated: subscribed, publishing")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.deactivate()
        self.get_logger().info("deactivated: not subscribed, nothing published; the model stays loaded")
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cleanup()
        self.get_logger().info("cleaned up: model unloaded")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        self.finalized = True
        self.get_logger().info(f"shut down from {state.label}")
        return SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cleanup()  # back to unconfigured with nothing held
        self.get_logger().error(f"error in {state.label}: released everything; configure again")
        return SUCCESS

    def _fail(self, what: str, e: BaseException, trace: bool = False) -> TransitionCallbackReturn:
        self.last_error = f"{type(e).__name__}: {e}" if trace else str(e)
        self.get_logger().error(f"{what} failed, staying {'unconfigured' if what == 'configure' else 'inactive'}: "
                                f"{self.last_error}")
        return FAILURE


def spin_managed(node: ManagedPerceptionNode) -> None:
    """Spin until the node is finalized (the shutdown transition) or the context ends."""
    while rclpy.ok() and not node.finalized:
        rclpy.spin_once(node, timeout_sec=0.1)
    if node.finalized:  # let the change_state response leave before the node goes away
        t_end = time.monotonic() + 0.2
        while rclpy.ok() and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.02)


def run(args: list[str] | None = None) -> int:
    """The managed node's process: exit 0 after the shutdown transition or SIGINT/SIGTERM."""
    from rmmss_ros.node.perception_node import main

    return main(args, ManagedPerceptionNode, spin_managed)
