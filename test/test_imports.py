"""The import graph, read from the source (every ``import`` statement, also inside functions: a lazy
import still ties the two modules together): no circles, the library never reaches up into the ROS
package or the CLI above both, and each room of ``rmmss_ros`` imports only the rooms it builds on
(docs/ARCHITECTURE.md, "Rooms and what each may import")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rmmss_core", "rmmss_ros", "rmmss_cli")

# room of rmmss_ros -> rooms (of rmmss_ros) it may import; the core (rmmss_core) is open to all
ROOMS: dict[str, set[str]] = {
    "conversions": set(),
    "sync": {"conversions"},
    "tf": {"conversions"},
    "registration": {"conversions", "tf"},
    "pipeline": {"conversions", "sync", "tf", "registration"},
    "outputs": {"conversions"},
    "node": {"conversions", "sync", "pipeline", "tf", "registration", "outputs"},
    "lifecycle": {"node", "conversions", "sync", "pipeline", "tf", "registration", "outputs"},
    "bag": {"conversions"},
    "replay": {"bag", "conversions", "sync", "pipeline", "node", "tf", "registration", "outputs"},
    "play": {"bag", "replay", "conversions"},
    "demo": {"bag", "play", "replay", "conversions", "node"},
    "bench": {"conversions", "sync", "pipeline", "node", "tf", "registration", "outputs", "bag"},
    "commands": set(),  # names modules as strings only
}
# the only modules of rmmss_ros.node that may import rclpy / ROS messages: the shell itself
ROS_SHELL = {"rmmss_ros.node.perception_node", "rmmss_ros.node.main"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules of ours that ``name`` imports (``from a import b``: ``a.b`` when that is a module)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        out |= {t for t in targets if t.split(".")[0] in PACKAGES and t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    known = all_modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def room(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "rmmss_ros" and len(parts) > 1 else None


def test_the_walker_sees_lazy_imports_and_finds_a_circle():
    """The checks below can fail: a function-level import closing a loop is a circle."""
    g = {"rmmss_core.a": {"rmmss_core.b"}, "rmmss_core.b": {"rmmss_core.c"}, "rmmss_core.c": {"rmmss_core.a"},
         "rmmss_core.d": set()}
    assert cycles(g) == [["rmmss_core.a", "rmmss_core.b", "rmmss_core.c"]]
    src = "def f():\n    from rmmss_ros.pipeline.pipeline import Pipeline\n"
    known = {"rmmss_ros.pipeline.pipeline": ROOT, "rmmss_ros.pipeline.gpu": ROOT}
    p = ROOT / "_probe.py"
    try:
        p.write_text(src)
        assert imports_of("rmmss_ros.pipeline.gpu", p, known) == {"rmmss_ros.pipeline.pipeline"}
    finally:
        p.unlink()


def test_no_import_circles():
    assert cycles(graph()) == []


def test_the_library_never_imports_the_ros_package_or_the_cli():
    g = graph()
    up = sorted(f"{m} -> {t}" for m, ts in g.items() if m.startswith("rmmss_core") for t in ts
                if not t.startswith("rmmss_core"))
    assert up == []
    ros_up = sorted(f"{m} -> {t}" for m, ts in g.items() if m.startswith("rmmss_ros") for t in ts
                    if t.startswith("rmmss_cli"))
    assert ros_up == []


def test_each_ros_room_imports_only_the_rooms_it_builds_on():
    g = graph()
    rooms = {room(m) for m in g if room(m)}
    assert rooms <= set(ROOMS), f"new rooms need a line in ROOMS and in docs/ARCHITECTURE.md: {rooms - set(ROOMS)}"
    bad = sorted(f"{m} -> {t}" for m, ts in g.items() if room(m) for t in ts
                 if room(t) and room(t) != room(m) and room(t) not in ROOMS[room(m)])
    assert bad == []


@pytest.mark.parametrize("name", sorted(m for m in all_modules() if m.startswith("rmmss_ros.")
                                        and room(m) in {"sync", "pipeline", "conversions", "tf", "registration",
                                                        "outputs", "node"} and m not in ROS_SHELL))
def test_the_core_rooms_of_the_node_import_no_ros(name):
    """Everything but the rclpy shell is testable without ROS: no rclpy, no *_msgs at module level
    or inside functions (message classes come in as arguments)."""
    tree = ast.parse(all_modules()[name].read_text())
    ros = set()
    for node in ast.walk(tree):
        mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        ros |= {m for m in mods if m.split(".")[0] == "rclpy" or m.split(".")[0].endswith("_msgs")}
    assert ros == set()


def test_the_library_names_no_ros_module_by_string_either():
    """A command or benchmark table naming ``rmmss_ros.x`` is an import by other means."""
    named = []
    for name, path in all_modules().items():
        if not name.startswith("rmmss_core"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
        named += [f"{name}: {n.value!r}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
                  and n.value.split(".")[0] in ("rmmss_ros", "rmmss_cli")]
    assert named == []
