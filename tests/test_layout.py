"""The package's shape: no import circles, no module named like its neighbour, nothing cited from outside.

The import graph is read from the source (the ``ast`` of every module, every ``import`` at module
level, inside functions and under ``TYPE_CHECKING``), not from what happens to be imported at run
time, so that a circle hidden inside a function is found as well. See docs/architecture.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "src" / "channelwatch"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (``from p import m`` counts ``p.m`` when it is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_checker_reads_function_level_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from channelwatch.store import opened\n"
        "def f():\n    from channelwatch.ingest.runs import record_of\n"
    )
    known = {"channelwatch.store", "channelwatch.store.opened", "channelwatch.ingest.runs"}
    assert _imports(source, "channelwatch.x", known) == {"channelwatch.store.opened", "channelwatch.ingest.runs"}


def test_no_import_circles() -> None:
    graph = import_graph()
    assert len(graph) > 40  # the walk found the package
    assert circles(graph) == []


# Layers from the bottom up: a module may import its own layer and the layers below it.
LAYERS = [
    {
        "errors",
        "dates",
        "eventloop",
        "failures",
        "identity",
        "openfiles",
        "redaction",
        "render",
        "validation",
        "spreadsheet",
        "terminal",
    },
    {"sources"},
    {"delivery.settings"},
    {"instance"},
    {"store"},
    {"ingest"},
    {"stats"},
    {"reports", "checks"},
    {"delivery.send", "delivery", "county"},
    {"daemon", "web"},
    {"cli", "__main__"},
]


def _layer(module: str) -> int:
    short = module.removeprefix("channelwatch").lstrip(".")
    if short == "":
        return 0
    candidates = [
        (len(name), level)
        for level, names in enumerate(LAYERS)
        for name in names
        if short == name or short.startswith(name + ".")
    ]
    assert candidates, f"{module} belongs to no layer: add its package to LAYERS and docs/architecture.md"
    return max(candidates)[1]  # the longest matching name: delivery.send over delivery


def test_imports_only_go_down_the_layers() -> None:
    upward = [
        f"{module} → {target}"
        for module, targets in import_graph().items()
        if module != "channelwatch.cli" and not module.startswith("channelwatch.cli.")
        for target in targets
        if _layer(target) > _layer(module)
    ]
    assert upward == []


def test_no_two_modules_differ_only_by_a_suffix() -> None:
    names = sorted({path.stem for path in PACKAGE.rglob("*.py") if path.stem != "__init__"})
    clashes = [
        (a, b)
        for a in names
        for b in names
        if a < b and b.startswith(a) and re.fullmatch(r"(e?r|ing|y|s|ion)", b[len(a) :])
    ]
    assert clashes == []


@pytest.mark.parametrize("folder", ["src", "tests", "scripts", "config", "jobs", "templates"])
def test_nothing_cites_a_document_outside_the_repository(folder: str) -> None:
    # Spelled in pieces so that this file does not match itself.
    outside = re.compile("|".join(["DESIGN" + " §", r"\.\./" + "shared", "[Ii]ssue" + r" #?\d", "refer" + "ence/"]))
    hits = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in (REPO / folder).rglob("*")
        if path.suffix in {".py", ".j2", ".toml", ".md", ".html", ".txt"} and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert hits == []


def test_the_readme_links_the_docs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in ("docs/counting-rules.md", "docs/configuration.md", "docs/architecture.md"):
        assert (REPO / page).is_file(), page
        assert page in readme, page
