"""The two lock files: the box's (what the OS image installs) is the runtime part of the full one."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", re.MULTILINE)
DEVTOOLS = ROOT / "edge" / "devtools"
DEV_ONLY = {"pytest", "playwright", "ruff", "mypy", "schemathesis", "pexpect", "hypothesis"}


def pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text()
    return {_normal(package): version for package, version in PIN.findall(text)}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def product_imports() -> set[str]:
    """The top-level modules edge/, drivers/ and sync/ import that are neither the stdlib nor our own."""
    found: set[str] = set()
    for folder in ("edge", "drivers", "sync"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.is_relative_to(DEVTOOLS):  # not shipped: the wheel leaves it out
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in ("edge", "drivers", "sync")}


def test_the_box_lock_pins_the_same_versions_as_the_full_lock_and_no_test_tools() -> None:
    full, box = pins("requirements.lock"), pins("requirements-box.lock")
    assert box, "requirements-box.lock pins nothing"
    assert {name: full.get(name) for name in box} == box, "regenerate requirements-box.lock with -c requirements.lock"
    assert not DEV_ONLY & set(box), f"test tools on the box: {sorted(DEV_ONLY & set(box))}"
    assert len(box) < len(full)


def test_every_package_the_product_imports_is_in_the_box_lock() -> None:
    box = pins("requirements-box.lock")
    providers = importlib.metadata.packages_distributions()
    missing = {
        module: sorted(providers.get(module, ["(not installed)"]))
        for module in product_imports()
        if not any(_normal(dist) in box for dist in providers.get(module, []))
    }
    assert not missing, f"imported by the product but not on the box: {missing}"


def runtime_closure() -> dict[str, str]:
    """Every distribution the box runs (classbox's dependencies, theirs, extras included) and who asks for it."""
    wanted: dict[str, str] = {}
    queue = [(Requirement(text), "classbox") for text in importlib.metadata.requires("classbox") or []]
    while queue:
        requirement, by = queue.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue  # dev extra, another platform or Python
        name = _normal(requirement.name)
        extras = sorted(requirement.extras)
        key = f"{name}[{','.join(extras)}]"
        if key in wanted:
            continue
        wanted[key] = by
        for text in importlib.metadata.requires(requirement.name) or []:
            inner = Requirement(text)
            if inner.marker is None or any(inner.marker.evaluate({"extra": e}) for e in ["", *extras]):
                queue.append((Requirement(str(inner).split(";")[0]), name))
    return {key.split("[")[0]: by for key, by in wanted.items()}


def test_the_box_lock_holds_everything_the_product_s_dependencies_need_at_run_time() -> None:
    box = pins("requirements-box.lock")
    missing = {name: by for name, by in runtime_closure().items() if name not in box}
    assert not missing, f"needed on the box (asked for by) but not in requirements-box.lock: {missing}"
