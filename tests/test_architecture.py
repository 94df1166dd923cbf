"""The house rules that keep the code navigable: one-way imports, small rooms, a fast CLI."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "i2i"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60  # lines of a function, its docstring not counted
#: A function may run longer when the comment right above it (or its decorators) starts with this.
LONG_FUNCTION_MARKER = "# Long:"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> set[str]:
    """The i2i modules ``module`` imports anywhere (functions included), except under TYPE_CHECKING.

    ``from i2i.a import b`` counts as an import of ``i2i.a.b`` when that is a module, else of
    ``i2i.a``. The parent packages that Python imports on the way are not counted: they are how
    packages work, not a dependency the code chose.
    """
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return components


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_i2i_modules() -> None:
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize(
    "importer, forbidden",
    [
        ("i2i.tasks", "i2i.trainer"),  # a task talks to the loop only through its own interface
        ("i2i.tasks", "i2i.training"),
        ("i2i.config", "i2i.tasks"),  # tasks register themselves; parsing queries the registry
        ("i2i.inference", "i2i.data.datasets"),  # inference shares image ops, not training data sets
        ("i2i.inference", "i2i.trainer"),
        ("i2i.models", "i2i.tasks"),
        ("i2i.registry", "i2i.models"),
        ("i2i.errors", "i2i"),  # every layer may raise these, so they depend on nothing
    ],
)
def test_seams_run_one_way(importer: str, forbidden: str) -> None:
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module == importer or module.startswith(importer + ".")
        for target in targets
        if target == forbidden or target.startswith(forbidden + ".")
    )
    assert offenders == []


def test_no_module_is_oversized() -> None:
    sizes = {m: len(p.read_text().splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def _long_functions(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = node.end_lineno - node.lineno + 1
        first_statement = node.body[0]
        if isinstance(first_statement, ast.Expr) and isinstance(getattr(first_statement, "value", None), ast.Constant):
            length -= first_statement.end_lineno - first_statement.lineno + 1  # a docstring is not code
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        above = lines[first - 2].strip() if first >= 2 else ""
        if length > MAX_FUNCTION_LINES and not above.startswith(LONG_FUNCTION_MARKER):
            found.append(f"{path.name}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_the_function_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def long():\n{body}\n\n\n{LONG_FUNCTION_MARKER} a table\ndef fine():\n{body}\n")
    assert _long_functions(tmp_path / "m.py") == [f"m.py:1 long ({MAX_FUNCTION_LINES + 1} lines)"]


def test_no_function_is_oversized_without_a_reason() -> None:
    assert [f for p in MODULES.values() for f in _long_functions(p)] == []


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_the_cli_and_the_package_start_without_torch() -> None:
    # torch takes seconds to import; --help, `recipes` and `import i2i` must not pay for it.
    result = _python("import sys, i2i, i2i.cli; print('torch' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "i2i", "recipes"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "pix2pix_demo" in result.stdout.split()
    assert "Usage: i2i" in subprocess.run(
        [sys.executable, "-m", "i2i", "--help"], capture_output=True, text=True, timeout=120
    ).stdout
