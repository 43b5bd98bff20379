"""docs/architecture.md describes the code as it is: every path it names exists, every package is in it."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import REPO

ARCHITECTURE = REPO / "docs" / "architecture.md"
# A path of ours in the text: edge/..., drivers/..., sync/... ending in .py or a folder's slash.
NAMED_PATH = re.compile(r"(?<![\w/.-])((?:edge|drivers|sync)/[\w/.-]*?(?:\.py|/))(?![\w/-])")


def named_paths(text: str) -> set[str]:
    """Every module or folder path of ours the text names."""
    return set(NAMED_PATH.findall(text))


def packages(root: Path = REPO) -> set[str]:
    """Every package under edge/ as the document names it (`edge/<name>/`)."""
    return {f"{path.parent.relative_to(root)}/" for path in (root / "edge").rglob("__init__.py")} - {"edge/"}


def document_problems(text: str, root: Path = REPO) -> list[str]:
    """Paths the text names that do not exist, and packages it does not name."""
    named = named_paths(text)
    missing = [f"names {path}, which does not exist" for path in sorted(named) if not (root / path).exists()]
    undescribed = [f"does not describe the package {path}" for path in sorted(packages(root) - named)]
    return missing + undescribed


def test_the_architecture_document_names_only_paths_that_exist_and_every_package() -> None:
    assert document_problems(ARCHITECTURE.read_text()) == []


def test_the_document_check_sees_a_path_that_is_gone_and_a_package_left_out(tmp_path: Path) -> None:
    for folder in ("edge/core", "edge/media", "edge/stream"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "edge" / "core" / "events.py").write_text("")
    text = "`edge/core/events.py` and `edge/core/` and edge/media/ and `edge/web/app.py`, not (other/edge/x.py)"
    assert document_problems(text, tmp_path) == [
        "names edge/web/app.py, which does not exist",
        "does not describe the package edge/stream/",
    ]


def test_the_readme_names_only_paths_that_exist() -> None:
    text = (REPO / "README.md").read_text()
    assert [path for path in sorted(named_paths(text)) if not (REPO / path).exists()] == []
