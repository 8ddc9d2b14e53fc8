"""The layout the packages promise: what is installed, which package imports which.

Read from the source with ``ast``, so the checks cover imports made inside
functions too (a lazy import hides a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from setuptools import find_packages

_CHECKOUT = Path(__file__).resolve().parent.parent
_PRODUCT = ("eventstore", "projections", "cli", "server")


def _modules() -> dict[str, Path]:
    """Every product module by dotted name."""
    found = {}
    for package in _PRODUCT:
        for path in sorted((_CHECKOUT / package).rglob("*.py")):
            parts = path.relative_to(_CHECKOUT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The modules ``name`` imports anywhere in its file at run time, as dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
        for inner in ast.walk(node)
    }
    targets = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # for annotations only: never executed, so never part of a cycle
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path) & modules.keys() for name, path in modules.items()}


def test_the_wheel_holds_only_the_product_packages() -> None:
    """``benchmarks`` (and ``tests``) stay in the checkout: not installed into site-packages."""
    config = tomllib.loads((_CHECKOUT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(_CHECKOUT), include=include)
    assert {package.partition(".")[0] for package in packages} == set(_PRODUCT)
    assert (_CHECKOUT / "benchmarks" / "bench.py").is_file()


def test_eventstore_imports_neither_projections_nor_cli() -> None:
    """The data path reads one way: eventstore -> projections -> cli -> server."""
    for name, targets in _graph().items():
        layer = name.partition(".")[0]
        below = {
            "eventstore": ("projections", "cli", "server"),
            "projections": ("cli", "server"),
        }.get(layer, ())
        upward = sorted(t for t in targets if t.partition(".")[0] in below)
        assert upward == [], f"{name} imports {upward}"


#: The only CLI module that loads the server (inside its command functions).
_SERVER_ENTRY = "cli.serve"


def test_only_the_serve_command_imports_the_server() -> None:
    """The server sits on top: of the CLI, only ``cli.serve`` imports it, lazily."""
    for name, targets in _graph().items():
        if name.partition(".")[0] != "cli" or name == _SERVER_ENTRY:
            continue
        into_server = sorted(t for t in targets if t.partition(".")[0] == "server")
        assert into_server == [], f"{name} imports {into_server}"
    tree = ast.parse(_modules()[_SERVER_ENTRY].read_text())
    top_level = [
        node
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("server")
    ]
    assert top_level == [], "cli.serve imports the server at the top (--help would load it)"


#: Cycles through imports inside functions that this test tolerates: none is left.
#: Keep it empty: a new cycle is a module that wants splitting.
_KNOWN_CYCLES: tuple[set[str], ...] = ()


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in graph[name]:
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == name:
                    break
            if len(component) > 1:
                found.append(component)

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_no_import_cycle_between_product_modules() -> None:
    """Not even through an import inside a function (codec <-> envelope was one)."""
    graph = _graph()
    # A package's __init__ re-exports its modules; an edge into a package from its own
    # modules is the package importing them, not a cycle of the modules themselves.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(f"{t}.")}
    for cycle in _cycles(graph):
        assert any(cycle <= known for known in _KNOWN_CYCLES), f"import cycle: {sorted(cycle)}"


def test_the_cycle_check_sees_an_import_inside_a_function() -> None:
    """The check itself can fail: a lazy import back is a cycle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [{"a", "b", "c"}]


def test_large_modules_say_why_they_are_large() -> None:
    """A product module over 500 lines states the reason in its docstring (``Size:``)."""
    unexplained = []
    for name, path in _modules().items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > 500 and "\nSize: " not in f"\n{docstring}":
            unexplained.append(f"{name} ({lines} lines)")
    assert unexplained == []
