"""Finding strings people read that are not marked for translation (`catalogs check` and the test suite).

Templates: text and the `title`, `aria-label`, `placeholder` and `alt` attributes outside `_()`,
`{% trans %}` and other Jinja expressions. Scripts: a string literal with words that is assigned to
`textContent`, `innerText`, `title`, `placeholder` (or set as such an attribute) outside `_()`.
Python: an alarm's message (`raise_alarm(name, message)`) that is a bare or composed literal instead
of `N_("...")` or a constant marked with it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}
JS_PROPERTIES = "textContent|innerText|innerHTML|title|placeholder|ariaLabel|alt"
TRANS_RE = re.compile(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", re.S)
JINJA_RE = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)
STRING = r""""(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`"""
STRING_RE = re.compile(STRING)
MARKED_RE = re.compile(r"(?<![\w$.])_\(\s*(?:" + STRING + r")\s*[,)]")
INTERPOLATION_RE = re.compile(r"\$\{[^}]*\}")
ASSIGNED_RE = re.compile(r"\.(?:" + JS_PROPERTIES + r")\s*(?:\+?=)(?!=)([^;\n]*)")
SET_ATTRIBUTE_RE = re.compile(r"""setAttribute\(\s*["'](?:title|aria-label|placeholder|alt)["']\s*,([^;\n]*)""")
# Calls whose argument (position, keyword) a person reads.
PERSON_ARGUMENTS = {"raise_alarm": (1, "message")}


@dataclass(frozen=True)
class Unmarked:
    """One string people read that no catalog will ever translate."""

    path: str
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text!r} is not marked for translation"


def has_words(text: str) -> bool:
    """Whether `text` has a letter in it (punctuation, numbers and symbols need no translation)."""
    return any(char.isalpha() for char in text)


class _TemplateText(HTMLParser):
    """Collects text nodes and person-read attributes outside scripts and styles."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str]] = []
        self._raw = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._raw += 1
        for name, value in attrs:
            if name in ATTRIBUTES and value and has_words(value.replace("\0", "")):
                self.found.append((self.getpos()[0], value))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._raw = max(0, self._raw - 1)

    def handle_data(self, data: str) -> None:
        if not self._raw and has_words(data.replace("\0", "")):
            self.found.append((self.getpos()[0], data.replace("\0", "…").strip()))


def _blank(match: re.Match[str]) -> str:
    """A Jinja construct as a placeholder that keeps the line count."""
    return "\0" + "\n" * match.group().count("\n")


def template_unmarked(source: str, path: str) -> list[Unmarked]:
    """Text in a Jinja2 HTML template that is outside every translation mark."""
    plain = JINJA_RE.sub(_blank, TRANS_RE.sub(_blank, source))
    parser = _TemplateText()
    parser.feed(plain)
    parser.close()
    return [Unmarked(path, line, text) for line, text in parser.found]


def _literals_with_words(expression: str) -> list[str]:
    """String literals with words left in a script expression once its `_()` calls are taken out."""
    bare = MARKED_RE.sub("(", expression)
    found = []
    for literal in STRING_RE.findall(bare):
        if has_words(INTERPOLATION_RE.sub("", literal[1:-1])):
            found.append(literal)
    return found


def script_unmarked(source: str, path: str) -> list[Unmarked]:
    """Literals a script shows people (text, title, placeholder) that are not wrapped in `_()`."""
    found = []
    for pattern in (ASSIGNED_RE, SET_ATTRIBUTE_RE):
        for match in pattern.finditer(source):
            line = source.count("\n", 0, match.start()) + 1
            found += [Unmarked(path, line, literal) for literal in _literals_with_words(match.group(1))]
    return found


def _marked_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound to `N_("...")`, names bound to a bare string literal) anywhere in a module."""
    marked: set[str] = set()
    bare: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if _is_mark(node.value):
                marked.add(node.targets[0].id)
            elif isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                bare.add(node.targets[0].id)
    return marked, bare - marked


def _is_mark(node: ast.expr) -> bool:
    """Whether `node` is `N_("...")` (or `_("...")`)."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("N_", "_")


def _unmarked_message(node: ast.expr, bare_names: set[str]) -> bool:
    """Whether a message expression reaches a person untranslatable: a literal, a composed string, a bare constant."""
    if isinstance(node, ast.IfExp):
        return _unmarked_message(node.body, bare_names) or _unmarked_message(node.orelse, bare_names)
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and has_words(node.value)
    if isinstance(node, (ast.JoinedStr, ast.BinOp)):
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        return True
    return isinstance(node, ast.Name) and node.id in bare_names


def _person_argument(call: ast.Call) -> ast.expr | None:
    """The argument of a call that a person reads (an alarm's message), if the call is one of those."""
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    if name not in PERSON_ARGUMENTS:
        return None
    position, keyword = PERSON_ARGUMENTS[name]
    if len(call.args) > position:
        return call.args[position]
    return next((kw.value for kw in call.keywords if kw.arg == keyword), None)


def python_unmarked(source: str, path: str) -> list[Unmarked]:
    """Messages a module hands to people (alarms) that are not marked with `N_()`."""
    tree = ast.parse(source, path)
    _, bare = _marked_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            argument = _person_argument(node)
            if argument is not None and _unmarked_message(argument, bare):
                found.append(Unmarked(path, node.lineno, ast.get_source_segment(source, argument) or "?"))
    return found


def unmarked(root: Path) -> list[Unmarked]:
    """Every unmarked string people read in the templates, scripts and Python of the tree at `root`."""
    web = root / "edge" / "doors" / "web"
    found: list[Unmarked] = []
    checks = (
        (web / "templates", "*.html", template_unmarked),
        (web / "static", "*.js", script_unmarked),
        (root / "edge", "*.py", python_unmarked),
    )
    for folder, pattern, check in checks:
        for path in sorted(folder.rglob(pattern)):
            found += check(path.read_text(encoding="utf-8"), str(path.relative_to(root)))
    return found
