"""Command-line flags made from the models' own signatures and docstrings, and values parsed by type hint."""
from __future__ import annotations

import argparse
import collections.abc
import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np

from dfr.data.io import read_image
from dfr.scoring import ScoringSettings


def weights_flag(value: str) -> str | None:
    """``imagenet``, ``random`` (→ None) or a path to vgg19-dcbb9e9d.pth."""
    if value == "random":
        return None
    if value != "imagenet" and not Path(value).is_file():
        raise argparse.ArgumentTypeError(f"{value}: not 'imagenet', 'random' or an existing checkpoint file")
    return value


WORKERS_HELP = "processes that read and decode images ahead of the model (default 0: the main process)"
# Constructor arguments with flags of their own, not generated from the signatures.
OWN_FLAGS = ("weights", "scoring", "seed", "device")
SCORING_FIELDS = tuple(ScoringSettings.__dataclass_fields__)


def parse_value(text: str, annotation: Any) -> Any:
    """A command-line string as a value of the type hint ``annotation`` (e.g. ``int | str | None``).

    Tried in this order, among the types the hint allows: ``none`` → None; ``true`` / ``false``
    → bool; an int; a float; for a sequence hint (``tuple[str, ...]``, ``Sequence[int]``) a
    comma-separated list (of ints also ``x``-separated: ``360x640``), each item parsed as the
    element type; the string itself. Anything
    else raises a ValueError naming the value and the types expected.
    """
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    allowed = typing.get_args(annotation) if union else (annotation,)
    word = text.strip().lower()
    if type(None) in allowed and word == "none":
        return None
    if bool in allowed and word in ("true", "false"):
        return word == "true"
    for kind in (int, float):
        if kind in allowed:
            try:
                return kind(text)
            except ValueError:
                pass
    for kind in allowed:
        if typing.get_origin(kind) in (tuple, list, collections.abc.Sequence):
            element = typing.get_args(kind)[0]
            separators = "[,xX]" if element is int else ","  # a size: 360x640
            try:
                return [parse_value(item.strip(), element) for item in re.split(separators, text)]
            except ValueError:
                if str not in allowed:
                    raise
    if str in allowed:
        return text
    names = {type(None): "none", bool: "true or false"}
    expected = " or ".join(names.get(kind, getattr(kind, "__name__", str(kind))) for kind in allowed)
    raise ValueError(f"{text!r} is not {expected}")


def shown(value: Any) -> str:
    """A default as it would be typed on the command line (see :func:`parse_value`)."""
    if value is None or isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return ",".join(shown(item) for item in value)
    return str(value)


def constructor_arguments(classes: dict[str, type]) -> dict[str, dict[str, inspect.Parameter]]:
    """Argument name → {model name: its constructor parameter}, for every argument but ``OWN_FLAGS``."""
    arguments: dict[str, dict[str, inspect.Parameter]] = {}
    for model, model_class in classes.items():
        for name, parameter in model_class.parameters(hints=True).items():
            if name not in OWN_FLAGS:
                arguments.setdefault(name, {})[model] = parameter
    return arguments


def argument_docs(model_class: type) -> dict[str, str]:
    """First sentence of each argument's entry in the ``Args:`` sections of the docstrings of the
    class and its bases (the class's own first), markup removed."""
    docs: dict[str, str] = {}
    for klass in reversed(model_class.__mro__):
        docs.update(_own_argument_docs(klass))
    return docs


def _own_argument_docs(model_class: type) -> dict[str, str]:
    """:func:`argument_docs` of one class's own docstring."""
    found = re.search(r"^( *)Args:\n", vars(model_class).get("__doc__") or "", re.MULTILINE)
    if found is None:
        return {}
    indent = found.group(1)  # entries are indented 4 more than "Args:", continuations 8
    section = found.string[found.end():].splitlines()
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in (line.removeprefix(indent) for line in section):
        entry = re.fullmatch(r"    (\w[\w, ]*): (.*)", line)
        if entry:
            names = [name.strip() for name in entry.group(1).split(",")]
            docs.update({name: entry.group(2) for name in names})
        elif line.startswith("        "):
            docs.update({name: f"{docs[name]} {line.strip()}" for name in names})
        else:
            break
    plain = {name: re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("``", "") for name, text in docs.items()}
    return {name: text.split(". ")[0].rstrip(".") + "." for name, text in plain.items()}


def argument_help(name: str, parameters: dict[str, inspect.Parameter], docs: dict[str, str]) -> str:
    """``<first sentence> (models; default value)``, or one default per group of models when they differ."""
    by_default: dict[str, list[str]] = {}
    for model, parameter in parameters.items():
        by_default.setdefault(shown(parameter.default), []).append(model)
    if len(by_default) == 1:
        [(default, models)] = by_default.items()
        where = f"{', '.join(models)}; default {default}"
    else:
        where = "; ".join(f"{', '.join(models)}: default {default}" for default, models in by_default.items())
    text = f"{docs[name]} ({where})" if name in docs else f"({where})"
    return text.replace("%", "%%")


def add_scoring_flags(parser: argparse.ArgumentParser, names: tuple[str, ...], title: str) -> None:
    """One flag per :class:`ScoringSettings` field in ``names``, with its documented meaning and default."""
    group = parser.add_argument_group("scoring arguments", title)
    docs, defaults = argument_docs(ScoringSettings), ScoringSettings()
    for name in names:
        help_text = f"{docs.get(name, '')} (default {shown(getattr(defaults, name))})".strip()
        group.add_argument(f"--{name.replace('_', '-')}", default=argparse.SUPPRESS, help=help_text.replace("%", "%%"))


def scoring_options(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The scoring flags given, parsed by the fields' type hints."""
    hints = typing.get_type_hints(ScoringSettings)
    options = {}
    for name in names:
        if name in vars(args):
            try:
                options[name] = parse_value(vars(args)[name], hints[name])
            except ValueError as error:
                raise ValueError(f"--{name.replace('_', '-')}: {error}") from None
    return options


#: Flags of every command (given as ``parents=`` to each sub-parser).
COMMON_FLAGS = argparse.ArgumentParser(add_help=False)
COMMON_FLAGS.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")


def region_masks_option(value: str | None) -> str | np.ndarray | None:
    """``--region-masks``: a mask file → one (H, W) array shared by every image; a folder stays a
    path; None stays None."""
    if value is None or Path(value).is_dir():
        return value
    return read_image(value)[:, :, 0]
