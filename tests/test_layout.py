"""The package's module graph: no import cycles (counting imports inside functions too)."""

from __future__ import annotations

import ast
from pathlib import Path

import clusterforce
import pytest

PACKAGE = Path(clusterforce.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = ["clusterforce", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (relative and absolute, at any depth)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles():
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, name, set(paths)) for name, path in paths.items()}
    # A package's __init__ re-exporting its own submodules is not a cycle of dependence.
    graph = {name: {m for m in deps if not (paths[m].name == "__init__.py" and name.startswith(m + "."))} for name, deps in graph.items()}
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


#: The package's layers, lowest first (docs/architecture.md draws them). A module may import its own
#: layer and the ones below it, never one above: the model contract does not depend on a kind, a kind
#: not on a workflow, nothing but the command line on the command line.
LAYERS = [
    {"descriptors"},
    {"data"},
    {"core", "lammps"},
    {"references"},
    {"kinds"},
    {"workflows"},
    {"cli", "testing"},
]
#: Compiled core and version: below every layer.
BASE = {"_kernels", "_version", "__version__"}


def _layer(module: str) -> int | None:
    """Index in :data:`LAYERS` of ``clusterforce.X...`` (None for the package itself and the base)."""
    top = module.split(".")[1] if module.count(".") else None
    if top is None or top in BASE or top == "__main__":
        return None
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_layout.py: put it in one (and in docs/architecture.md)")


def _all_imports(path: Path, name: str) -> dict[str, int]:
    """Every ``clusterforce`` module ``path`` imports, at any depth, with the line of the import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" if base == "clusterforce" else base for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        found.update({t: node.lineno for t in targets if t.startswith("clusterforce.")})
    return found


def test_no_layer_imports_a_higher_one():
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        own = _layer(name)
        if own is None:
            continue
        for target, line in _all_imports(path, name).items():
            other = _layer(target)
            if other is not None and other > own:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} ({'/'.join(sorted(LAYERS[own]))}) imports {target}")
    assert not violations, "a lower layer imports a higher one:\n" + "\n".join(violations)


def test_every_top_level_module_is_in_a_layer():
    for path in PACKAGE.iterdir():
        if path.name.startswith(("_", ".")) or path.suffix not in (".py", "") or path.name == "py.typed":
            continue
        _layer(f"clusterforce.{path.stem}")


#: What must use a model only through the estimator and Calculator contract (issue 27): no kind's
#: module imported, no kind named.
KIND_FREE = [
    "core",
    "references",
    "workflows",
    "testing.py",
    "cli/commands/md.py",
    "cli/commands/optimize.py",
    "cli/commands/search.py",
    "cli/commands/learn.py",
    "cli/commands/screen.py",
]


def _kind_free_files() -> list[Path]:
    out = []
    for entry in KIND_FREE:
        path = PACKAGE / entry
        out += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return [p for p in out if p.name != "registry.py"]


@pytest.mark.parametrize("path", _kind_free_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_workflows_and_contract_name_no_kind(path):
    from clusterforce.core.registry import KINDS

    name = _module_name(path)
    for target, line in _all_imports(path, name).items():
        assert not target.startswith("clusterforce.kinds."), f"{path.name}:{line} imports {target}: use the estimator/Calculator contract"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert node.value not in KINDS, f"{path.name}:{node.lineno} names kind {node.value!r}"
