"""Write docs/api.md, the API reference, from the docstrings: the module tree (one line per module)
and every public class, function and method of ``dfr`` and ``baselines`` with its signature and
docstring. ``tests/test_docs.py`` fails when docs/api.md differs from what this writes.

    python docs/make_api.py          # rewrite docs/api.md
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dfr", "baselines")
HEADER = """# API reference

Generated from the docstrings by `python docs/make_api.py` (a test keeps it up to date).
The public entry points are the names of the `dfr` package (`dfr.DFR`, `dfr.load`,
`dfr.create_model`, …) and the classes of `baselines`; the sub-packages below are where
they live and what they are built from.
"""


def module_names() -> list[str]:
    """Every module of the packages, packages first, in import-path order (private ones left out)."""
    names = []
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(names, key=lambda name: name.split("."))


def first_line(doc: str | None) -> str:
    """The first sentence of a docstring, on one line, without reST roles."""
    text = " ".join((doc or "").strip().split("\n\n")[0].split())
    return re.sub(r":\w+:`~?([^`]*)`", r"`\1`", text).replace("``", "`")


def tree(names: list[str]) -> list[str]:
    """The module tree: one line per module, indented by depth, with its first docstring sentence."""
    lines = ["## Modules", ""]
    for name in names:
        depth = name.count(".")
        lines.append(f"{'  ' * depth}- `{name}` — {first_line(importlib.import_module(name).__doc__)}")
    return lines + [""]


def public_members(module) -> list[tuple[str, object]]:
    """The classes and functions defined in ``module`` whose names do not start with ``_``."""
    return [(name, value) for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", None) == module.__name__]


def signature(value) -> str:
    try:
        return str(inspect.signature(value))
    except (TypeError, ValueError):
        return "(...)"


def reference(names: list[str]) -> list[str]:
    """Per module, each public class (with its public methods) and function: signature and docstring."""
    lines = ["## Reference", ""]
    for name in names:
        module = importlib.import_module(name)
        members = public_members(module)
        if not members:
            continue
        lines += [f"### `{name}`", "", first_line(module.__doc__), ""]
        for member, value in members:
            lines += [f"#### `{member}{signature(value)}`", "", inspect.getdoc(value) or "", ""]
            if inspect.isclass(value):
                for method, function in vars(value).items():
                    if not method.startswith("_") and inspect.isfunction(function):
                        lines += [f"- `{method}{signature(function)}` — {first_line(inspect.getdoc(function))}"]
                lines.append("")
    return lines


def render() -> str:
    """The whole of docs/api.md."""
    names = module_names()
    text = "\n".join([HEADER, *tree(names), *reference(names)])
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    (ROOT / "docs" / "api.md").write_text(render())
    print(f"wrote {ROOT / 'docs' / 'api.md'}")
