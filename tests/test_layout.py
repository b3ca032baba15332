"""The shape of the code: imports point one way (benchmarks → baselines → dfr), no module imports
another that imports it back, and every public name of the library is documented."""
import ast
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dfr", "baselines", "benchmarks")
#: Which top-level packages each may import.
ALLOWED = {"dfr": {"dfr"}, "baselines": {"dfr", "baselines"}, "benchmarks": {"dfr", "baselines", "benchmarks"}}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports anywhere in its code (function bodies included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return {target for target in targets if target in modules and target != name}


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_imports_point_one_way(graph):
    wrong = [(name, target) for name, targets in graph.items() for target in targets
             if target.split(".")[0] not in ALLOWED[name.split(".")[0]]]
    assert not wrong, f"imports against benchmarks → baselines → dfr: {wrong}"


def test_no_import_cycle(graph):
    state: dict[str, str] = {}

    def cycle_from(name, path):
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = cycle_from(target, path + [target])
                if found:
                    return found
        state[name] = "done"
        return None

    for name in sorted(graph):
        if name not in state:
            found = cycle_from(name, [name])
            assert found is None, f"import cycle: {' -> '.join(found)}"


def test_no_module_uses_a_private_name_of_another_module():
    """``module._name`` (an imported module's private function, constant or import) is used nowhere
    but in that module; private methods are a class's own business and its subclasses'."""
    found = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        aliases = {alias.asname or alias.name.split(".")[0] for node in ast.walk(tree)
                   if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{name}:{node.lineno} {node.value.id}.{node.attr}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                found += [f"{name}:{node.lineno} from {node.module} import {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not found, f"private names used from another module: {found}"


def test_every_public_name_of_the_library_is_documented():
    """Every public module, class, function and method of ``dfr`` (and of ``baselines``) has a docstring."""
    missing = []
    for name in _modules():
        if name.split(".")[0] == "benchmarks" or name.rsplit(".", 1)[-1].startswith("_"):
            continue
        module = importlib.import_module(name)
        if not inspect.getdoc(module):
            missing.append(name)
        for attribute, value in vars(module).items():
            if attribute.startswith("_") or getattr(value, "__module__", None) != name:
                continue
            if (inspect.isclass(value) or inspect.isfunction(value)) and not inspect.getdoc(value):
                missing.append(f"{name}.{attribute}")
            if inspect.isclass(value):
                for member, function in vars(value).items():
                    if not member.startswith("_") and inspect.isfunction(function) and not inspect.getdoc(function):
                        missing.append(f"{name}.{attribute}.{member}")
    assert not missing, f"public names without a docstring: {missing}"


def test_former_import_paths_still_work():
    """Modules that moved into sub-packages import under their former names as the same module."""
    import dfr
    from dfr.compat import MOVED

    for former, current in MOVED.items():
        assert importlib.import_module(former) is importlib.import_module(current), former
    from dfr.dfr_model import DFR
    from dfr.io import read_image
    from dfr.synthetic import defect_dataset

    assert DFR is dfr.DFR and read_image is dfr.data.io.read_image and callable(defect_dataset)
    from benchmarks.datasets import read_mvtec, write_pool_like

    assert read_mvtec is dfr.data.readers.read_mvtec and callable(write_pool_like)
