"""ament_python package `rmmss_ros`: installs both Python packages (rmmss_core, rmmss_ros) and the
`rmmss` command above them (rmmss_cli),
the launch and config files and the sample bags, and the console scripts."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "rmmss_ros"


def _files(pattern: str) -> list[str]:
    return [f for f in glob(pattern, recursive=True) if os.path.isfile(f)]


def _tree(root: str) -> list[tuple[str, list[str]]]:
    """data_files entries that keep the folder structure of `root` under share/<pkg>/."""
    entries: dict[str, list[str]] = {}
    for path in _files(f"{root}/**/*"):
        entries.setdefault(os.path.join("share", PACKAGE, os.path.dirname(path)), []).append(path)
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["rmmss_core", "rmmss_core.*", "rmmss_ros", "rmmss_ros.*", "rmmss_cli"]),
    package_data={"rmmss_core": ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", _files("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", _files("config/*.yaml")),
        # `rmmss` on PATH after `source install/setup.bash` (colcon adds <prefix>/bin to PATH)
        ("bin", ["scripts/rmmss"]),
        *_tree("rosbags"),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="rmmss developers",
    maintainer_email="dev@rmmss.local",
    description="Robust multi-modal semantic segmentation (library, CLI and ROS 2 node)",
    license="Apache-2.0",
    tests_require=["pytest"],
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "rmmss = rmmss_cli:main",
            "perception_node = rmmss_ros.node.main:main",
            "perception_lifecycle_node = rmmss_ros.lifecycle.main:main",
        ],
    },
)
