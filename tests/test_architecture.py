"""The layers of docs/architecture.md, read from the imports themselves (``ast``, no import runs).

Every ``import`` counts, those inside functions too (a deferred import is still a dependency);
only those under ``if TYPE_CHECKING:`` do not. Two rules:

- no import circle among the project's modules;
- the foundation (``videoplatform.api``, ``.cache``, ``.db``, ``.jobs``, ``.metrics``, ``.ids``)
  imports no app and nothing of the entry layer; it tells upper layers things through hooks
  they register (``videoplatform.cache.hooks``), never by importing them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "videos", "subscriptions", "streaming", "webhooks", "videoplatform", "settings")
APPS = ("accounts", "videos", "subscriptions", "streaming", "webhooks")
FOUNDATION = (
    "videoplatform.api",
    "videoplatform.cache",
    "videoplatform.db",
    "videoplatform.jobs",
    "videoplatform.errors",
    "videoplatform.events",
    "videoplatform.metrics",
    "videoplatform.ids",
)
ENTRY = (
    "videoplatform.entry",
    "videoplatform.urls",
    "videoplatform.wsgi",
    "videoplatform.asgi",
    "videoplatform.celery",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def project_files() -> Iterator[Path]:
    for package in PACKAGES:
        base = ROOT / package
        if base.is_dir():
            yield from (path for path in base.rglob("*.py") if "migrations" not in path.parts)


def _under_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (the deepest module each import names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def resolve(candidate: str) -> None:
        while candidate and candidate not in modules:
            candidate = candidate.rpartition(".")[0]
        if candidate and candidate != name:
            found.add(candidate)

    def visit(nodes: Iterable[ast.AST]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _under_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    resolve(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                for alias in node.names:
                    resolve(f"{source}.{alias.name}")
            visit(ast.iter_child_nodes(node))

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in project_files()}
    modules = set(files)
    return {name: imported(path, modules) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        work = [(node, iter(sorted(graph.get(node, ()))))]
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        while work:
            current, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[current] = min(low[current], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[current])
            if low[current] == index[current]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == current:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def test_no_import_circle_among_the_projects_modules():
    assert circles(import_graph()) == []


def test_the_foundation_imports_no_app_and_no_entry_module():
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if within(module, FOUNDATION)
        for target in targets
        if within(target, APPS) or within(target, ENTRY)
    )
    assert wrong == []


def test_apps_import_no_entry_module():
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        if within(module, APPS)
        for target in targets
        if within(target, ENTRY)
    )
    assert wrong == []


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        ({"a": "from . import b", "b": "import pkg.a"}, [["pkg.a", "pkg.b"]]),
        (
            {"a": "def f():\n    from .b import x", "b": "from .c import y", "c": "from . import a"},
            [["pkg.a", "pkg.b", "pkg.c"]],
        ),
        (
            {
                "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b",
                "b": "from . import a",
            },
            [],
        ),
        ({"a": "from . import b", "b": "x = 1"}, []),
    ],
)
def test_the_check_finds_a_circle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sources: dict[str, str], expected: list[list[str]]
):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in sources.items():
        (package / f"{name}.py").write_text(text)
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGES"]), "PACKAGES", ("pkg",))
    assert circles(import_graph()) == expected


def test_every_task_enqueued_by_name_is_registered_under_that_name():
    """Modules that enqueue a job by name (so as not to import the tasks module, which imports
    them) name a task that exists."""
    from celery import current_app

    from videoplatform.jobs.enqueue import task_named

    names = set()
    for path in project_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "enqueue_on_commit",
                "task_named",
            ):
                first = node.args[0] if node.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    names.add(first.value)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                value = node.value.value
                if isinstance(value, str) and value.count(".") == 2 and ".tasks." in value:
                    names.add(value)
    expected = {
        "accounts.tasks.send_email",
        "videos.tasks.index_video",
        "streaming.tasks.transcode_media_file",
    }
    assert expected <= names
    current_app.loader.import_default_modules()
    for name in sorted(names):
        assert task_named(name).name == name
