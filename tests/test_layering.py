"""DESIGN.md's arrows: drivers import nothing of ours; sync never imports edge."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import REPO

FORBIDDEN = {"drivers": {"edge", "sync"}, "sync": {"edge"}}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_arrows_point_down(package: str) -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & FORBIDDEN[package])
        for path in sorted((REPO / package).rglob("*.py"))
        if imported_packages(path) & FORBIDDEN[package]
    }
    assert offenders == {}


OURS = {"edge", "sync", "drivers"}
STATE_OWNERS = {"edge/doors/web/app.py", "edge/doors/web/deps.py"}  # where the app is given its Box and routes get it
# The command line imports each command's modules when it runs: `--help` must not load the daemon.
LAZY_IMPORTS_ALLOWED = {"edge/cli.py"}


def _ours(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] in OURS
    return any(alias.name.split(".")[0] in OURS for alias in node.names)


def _app_state(node: ast.AST) -> bool:
    """`<something>.app.state`."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "state"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "app"
    )


def wiring_problems(path: Path, root: Path = REPO) -> list[str]:
    """Function-local imports of our modules, TYPE_CHECKING imports, components looked up by name, app.state reads."""
    tree = ast.parse(path.read_text(), str(path))
    name = str(path.relative_to(root))
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and name not in LAZY_IMPORTS_ALLOWED:
            problems += [
                f"{name}:{inner.lineno}: import inside {node.name}()"
                for inner in ast.walk(node)
                if isinstance(inner, (ast.Import, ast.ImportFrom)) and _ours(inner)
            ]
        elif isinstance(node, ast.Name) and node.id == "TYPE_CHECKING":
            problems.append(f"{name}:{node.lineno}: TYPE_CHECKING import (an import cycle dodged)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "component":
            problems.append(f"{name}:{node.lineno}: a component looked up by name")
        elif _app_state(node) and name not in STATE_OWNERS:
            problems.append(f"{name}:{node.lineno}: reaches into request.app.state instead of the service layer")
    return problems


def test_the_service_layer_and_doors_get_components_wired_in_not_looked_up() -> None:
    problems = [problem for path in sorted((REPO / "edge").rglob("*.py")) for problem in wiring_problems(path)]
    assert problems == []


def test_the_wiring_check_sees_each_kind_of_lookup(tmp_path: Path) -> None:
    source = tmp_path / "edge" / "door.py"
    source.parent.mkdir()
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from edge.box import Box\n"
        "def door(request, box):\n"
        "    from edge.stream.viewers import ViewerHub\n"
        "    import json\n"  # not ours: allowed
        "    hub = box.component('stream')\n"
        "    return request.app.state.box\n"
    )
    found = sorted(wiring_problems(source, tmp_path))
    assert found == [
        "edge/door.py:2: TYPE_CHECKING import (an import cycle dodged)",
        "edge/door.py:5: import inside door()",
        "edge/door.py:7: a component looked up by name",
        "edge/door.py:8: reaches into request.app.state instead of the service layer",
    ]


# The house's inner arrows: doors -> box -> concerns -> core -> drivers/sync.
KERNEL = "core"
ABOVE_CONCERNS = {"box", "doors", "daemon", "cli", "demo", "firstboot", "devtools", "__main__", "__init__"}


def package_of(path: Path, root: Path = REPO) -> str:
    """The `edge` package a module belongs to: its folder under edge/, or its own name at edge/'s root."""
    parts = path.relative_to(root / "edge").parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def edge_imports(path: Path, root: Path = REPO) -> set[str]:
    """The `edge` packages (or root modules) a module imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module] if node.module != "edge" else [f"edge.{a.name}" for a in node.names]
        for module in modules:
            parts = module.split(".")
            if parts[0] == "edge" and len(parts) > 1 and (root / "edge" / parts[1]).exists() | (
                root / "edge" / f"{parts[1]}.py"
            ).exists():
                names.add(parts[1])
    return names


def arrow_problems(root: Path = REPO, package: Callable[[Path], str] | None = None) -> list[str]:
    """Arrows that point up or sideways inside edge/, and cycles between its packages."""
    package = package or (lambda path: package_of(path, root))
    graph: dict[str, set[str]] = {}
    problems = []
    for path in sorted((root / "edge").rglob("*.py")):
        here, name = package(path), str(path.relative_to(root))
        targets = {target for target in edge_imports(path, root) if target != here}
        graph.setdefault(here, set()).update(targets)
        if here == KERNEL:
            problems += [f"{name}: the kernel imports the concern {t!r}" for t in sorted(targets - {"__init__"})]
        elif here not in ABOVE_CONCERNS:
            problems += [f"{name}: a concern imports {t!r}" for t in sorted(targets & {"box", "doors", "daemon"})]
        if here != "devtools" and "devtools" in targets:
            problems.append(f"{name}: the product imports the developers' tooling (not in the box)")
    problems += [f"a cycle between packages: {' <-> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while (member := stack.pop()) != node:
                group.append(member)
            group.append(node)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def test_the_kernel_imports_no_concern_no_concern_imports_the_box_or_a_door_and_no_packages_form_a_cycle() -> None:
    assert arrow_problems() == []


def test_the_arrow_check_sees_a_kernel_reaching_up_a_concern_reaching_a_door_and_a_cycle(tmp_path: Path) -> None:
    files = {
        "edge/core/events.py": "from edge.lessons.lessons import Lesson\n",
        "edge/lessons/lessons.py": "from edge.core.events import EventBus\n",
        "edge/stream/whep.py": "from edge.doors.web.deps import BoxDep\nfrom edge.media import packets\n",
        "edge/media/packets.py": "from edge.box import Box\nimport edge.stream.feeds\n",
        "edge/stream/feeds.py": "",
        "edge/box.py": "from edge.media.packets import PacketFanout\n",
        "edge/doors/web/deps.py": "from edge.box import Box\nfrom edge.devtools import marks\n",
        "edge/devtools/marks.py": "from edge.doors.web import i18n\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert arrow_problems(tmp_path) == [
        "edge/core/events.py: the kernel imports the concern 'lessons'",
        "edge/doors/web/deps.py: the product imports the developers' tooling (not in the box)",
        "edge/media/packets.py: a concern imports 'box'",
        "edge/stream/whep.py: a concern imports 'doors'",
        "a cycle between packages: box <-> devtools <-> doors <-> media <-> stream",
        "a cycle between packages: core <-> lessons",
    ]
# The composition root and the command line build the Box; the doors call it. Nothing else sees it:
# components get their narrow ports (edge/core/ports.py) from the composition root instead.
BOX_IMPORTERS = {"edge/daemon.py", "edge/cli.py", "edge/demo.py", "edge/firstboot.py"}


def _imports_module(path: Path, module: str) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(alias.name == module for alias in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parent, _, name = module.rpartition(".")
            if node.module == module or (node.module == parent and any(a.name == name for a in node.names)):
                return True
    return False


def test_only_the_composition_root_and_the_doors_import_the_box() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "edge").rglob("*.py"))
        if _imports_module(path, "edge.box")
        and str(path.relative_to(REPO)) not in BOX_IMPORTERS
        and not str(path.relative_to(REPO)).startswith("edge/doors/")
    ]
    assert offenders == []


def test_the_kernel_imports_no_concern() -> None:
    """edge/core imports drivers, sync, third-party modules and other edge.core modules only."""
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name
            for name in _edge_modules(path)
            if not (name == "edge.core" or name.startswith("edge.core.") or name == "edge")
        )
        for path in sorted((REPO / "edge" / "core").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def _edge_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.split(".")[0] == "edge"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("edge"):
            names |= {node.module} if node.module != "edge" else {f"edge.{alias.name}" for alias in node.names}
    return names


def test_the_box_check_sees_both_import_forms(tmp_path: Path) -> None:
    plain, named = tmp_path / "plain.py", tmp_path / "named.py"
    plain.write_text("import edge.box\n")
    named.write_text("from edge import box\n")
    assert _imports_module(plain, "edge.box")
    assert _imports_module(named, "edge.box")
    assert not _imports_module(named, "edge.boxes")


BOX_INSIDES = {"services", "parts"}  # the kernel and the components the Box is made of: for the daemon and tests


def reach_throughs(path: Path, root: Path = REPO) -> list[str]:
    """Places in a door that read the Box's kernel or components (`box.services`, `box.parts`) instead of asking it."""
    tree = ast.parse(path.read_text(), str(path))
    name = str(path.relative_to(root))
    return [
        f"{name}:{node.lineno}: box.{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in BOX_INSIDES
        and isinstance(node.value, ast.Name | ast.Attribute)
        and (node.value.id if isinstance(node.value, ast.Name) else node.value.attr) == "box"
    ]


def test_the_doors_ask_the_box_and_never_reach_into_its_kernel_or_components() -> None:
    assert [p for path in sorted((REPO / "edge" / "doors").rglob("*.py")) for p in reach_throughs(path)] == []


def test_the_reach_through_check_sees_the_kernel_and_the_components_read_from_a_door(tmp_path: Path) -> None:
    source = tmp_path / "edge" / "doors" / "door.py"
    source.parent.mkdir(parents=True)
    source.write_text(
        "def door(box, request):\n    box.services.alarms\n    return request.box.parts.recorder, box.health()\n"
    )
    assert reach_throughs(source, tmp_path) == ["edge/doors/door.py:2: box.services", "edge/doors/door.py:3: box.parts"]
