# rmmss: the two set-up commands are `make demo` and `make test`. Each installs what it needs
# on a fresh Debian machine (idempotent: a second run with nothing changed skips the installs).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.rmmss-installed
# one thread per process keeps the 2-core machines responsive; override on bigger ones
export OMP_NUM_THREADS ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONUNBUFFERED := 1

.PHONY: install system-deps test test-underlay test-launch test-all demo bench bench-robustness gpu-check lint colcon clean

install: $(STAMP)

# Debian packages: open3d-cpu needs libusb-1.0-0 at import time.
system-deps:
	@dpkg -s libusb-1.0-0 >/dev/null 2>&1 || { \
	  echo "[rmmss] installing Debian package libusb-1.0-0 (needed by open3d)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libusb-1.0-0; }

$(STAMP): requirements.txt constraints.txt setup.py | system-deps
	@echo "[rmmss] creating the virtual environment in $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# torch first and pinned: an unpinned torch would pull GBs of CUDA packages
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -c constraints.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PIP) install -q --no-deps --no-build-isolation -e . 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -c "import torch, open3d, rosbags, rclpy, onnxruntime, numba, rmmss_core, rmmss_ros, rmmss_cli"
	@touch $(STAMP)
	@echo "[rmmss] environment ready"

# Two kinds of tests need more of ROS 2 than the PyPI wheels give (rclpy, the core messages):
# - `underlay` (pytest marker): message packages that robots get from /opt/ros/jazzy and that
#   ../shared/ros2-jazzy generates here (event_camera_msgs, vision_msgs, tf2_msgs). `make test`
#   runs them with the underlay that .ci/run builds (or /opt/ros/jazzy); in the plain venv they skip.
# - the launch-system tests: ROS 2's launch, launch_ros, launch_testing and ros2cli, which no
#   registry here ships (the underlay builds messages only). They run where /opt/ros/jazzy is
#   (`make test-launch` on a robot); here they are skipped, and say why. The launch file's own rules
#   are tested without `launch` (test/test_launch_logic.py, in the main run).
UNDERLAY_SETUP := $(firstword $(wildcard .ros2-underlay/setup.bash /opt/ros/jazzy/setup.bash))
ROS_SETUP := $(wildcard /opt/ros/jazzy/setup.bash)
LAUNCH_TESTS := test/test_launch_perception.py test/test_node_launch_cli.py \
	test/test_node_policies.py::test_launch_arguments_override_the_params_file_only_when_given

test: install
	$(PY) -m pytest test
	@$(MAKE) --no-print-directory test-underlay
	@$(MAKE) --no-print-directory test-launch

test-underlay:
ifeq ($(UNDERLAY_SETUP),)
	@echo "[rmmss] underlay tests SKIPPED: no event_camera_msgs / vision_msgs / tf2_msgs here. Build the"
	@echo "        message underlay (bash ../shared/ros2-jazzy/build-underlay.sh --prefix .ros2-underlay;"
	@echo "        .ci/run does) or source a ROS 2 Jazzy install, then run: make test-underlay"
else
	@echo "[rmmss] tests that need the ROS 2 message packages, with $(UNDERLAY_SETUP)"
	source $(UNDERLAY_SETUP) && python -m pytest -p no:cacheprovider -m "underlay and not slow and not gpu" test
endif

test-launch:
ifeq ($(ROS_SETUP),)
	@echo "[rmmss] launch-system tests SKIPPED: ROS 2's launch, launch_ros, launch_testing and ros2cli are"
	@echo "        not installable here (no registry ships them; ../shared/ros2-jazzy builds message"
	@echo "        packages only). On a machine with ROS 2 Jazzy: source /opt/ros/jazzy/setup.bash && make test-launch"
else
	@echo "[rmmss] launch-system tests with $(ROS_SETUP)"
	source $(ROS_SETUP) && python -m pytest -p no:cacheprovider $(LAUNCH_TESTS)
endif

# everything, including the heavier checks behind the `slow` marker
test-all: install
	$(PY) -m pytest test -m "slow or not slow"

demo: install
	$(PY) -m rmmss_cli demo

bench: install
	$(PY) -m rmmss_cli.bench --out docs/bench

# one thread per process: with 2 threads and the data-loader worker, 2 cores oversubscribe (~20x slower)
bench-robustness: install
	OMP_NUM_THREADS=1 $(PY) -m rmmss_cli benchmark --preset cpu

# the CUDA check (docs/bench/gpu.md): runs on a GPU machine as it is, without installing anything
# (no network there); GPU_CHECK_ARGS e.g. "--data gpu-check-data/robustness-data.tar" or
# "--device cpu --smoke" on a CPU machine
GPU_PY := $(shell [ -x $(PY) ] && echo $(PY) || echo python3)
gpu-check:
	$(GPU_PY) -m rmmss_cli gpu-check $(GPU_CHECK_ARGS)

lint: install
	$(VENV)/bin/ruff check rmmss_core rmmss_ros rmmss_cli test launch setup.py

colcon: install
	d=$$(mktemp -d) && $(VENV)/bin/colcon --log-base $$d/log build --base-paths . --build-base $$d/build --install-base $$d/install && rm -rf $$d

clean:
	rm -rf $(VENV) build install log
