"""Declarative checks of model parameters.

A model class declares what each constructor argument (or preset setting) may be, as
scikit-learn's estimators do::

    PARAMETERS = {"latent_dim": one_of(None, positive_int), "explained_variance": interval(0, 1, low_open=True)}
    CONSTRAINTS = [Constraint(("test_hop", "window"), lambda hop, window: 1 <= hop <= window,
                              "test_hop must lie in 1 … window so that windows cover every frame")]

and :meth:`dfr.AnomalyModel.check_parameters` checks them all, with the preset's values filled
in, before ``fit`` builds anything and when a model file is loaded. A failed check raises a
ValueError that names the model, the parameter, what it may be and what it got.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from dfr.data.tiles import as_size


@dataclass(frozen=True)
class Rule:
    """What one parameter may be: ``test(value)`` holds, described by ``text`` ("a positive
    integer"); ``hint(value)``, when given, adds a suggestion to the error ("nearest valid: 96 or 100")."""

    test: Callable[[Any], bool]
    text: str
    hint: Callable[[Any], str] | None = None

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.test(value))
        except TypeError:  # a value of the wrong kind for the test (None < 1, ...)
            return False


@dataclass(frozen=True)
class Constraint:
    """A condition on several parameters: ``test(*values of names)`` holds, or ``message``."""

    names: tuple[str, ...]
    test: Callable[..., bool]
    message: str


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


positive_int = Rule(lambda v: _integer(v) and v >= 1, "a positive integer")
boolean = Rule(lambda v: isinstance(v, bool), "True or False")
non_negative = Rule(lambda v: _number(v) and v >= 0, "a finite number >= 0")


def at_least(low: int) -> Rule:
    """An integer of at least ``low``."""
    return Rule(lambda v: _integer(v) and v >= low, f"an integer >= {low}")


def interval(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Rule:
    """A finite number between ``low`` and ``high``, each end included unless open."""
    text = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    return Rule(lambda v: _number(v) and (low < v if low_open else low <= v) and (v < high if high_open else v <= high),
                f"a number in {text}")


def literal(*values: Any) -> Rule:
    """One of ``values`` (compared with ``==``, bools never standing for 0 or 1)."""
    shown = [repr(value) for value in values]
    text = f"one of {', '.join(shown)}" if len(shown) > 2 else " or ".join(shown)
    return Rule(lambda v: any(v == allowed and type(v) is type(allowed) or v is allowed for allowed in values), text)


def sequence_of(rule: Rule, length: int | None = None) -> Rule:
    """A list or tuple (of ``length`` items when given, else at least one) each of which passes ``rule``."""
    count = f"{length} " if length else ""
    return Rule(lambda v: isinstance(v, (list, tuple)) and (len(v) == length if length else len(v) >= 1)
                and all(rule(item) for item in v), f"a sequence of {count}items, each {rule.text}")


def one_of(*options: Rule | Any) -> Rule:
    """Anything that passes one of ``options``: rules, or plain values (as :func:`literal`)."""
    rules = [option if isinstance(option, Rule) else literal(option) for option in options]
    hints = [rule.hint for rule in rules if rule.hint is not None]
    return Rule(lambda v: any(rule(v) for rule in rules), ", ".join(rule.text for rule in rules[:-1])
                + (" or " if len(rules) > 1 else "") + rules[-1].text, hints[0] if hints else None)


def size_rule(valid: Callable[[int], bool], text: str, *, rectangles: bool = False) -> Rule:
    """A network side in pixels that passes ``valid``; with ``rectangles`` also a (height, width)
    pair or ``"HxW"`` text whose two sides pass. The error names the nearest valid sides."""

    def nearest(size: Any) -> str:
        if not _integer(size) or size < 1:
            return ""
        below = next((s for s in range(size - 1, 0, -1) if valid(s)), None)
        above = next((s for s in range(size + 1, 10 * size + 1000) if valid(s)), None)
        found = " or ".join(str(s) for s in (below, above) if s is not None)
        return f"nearest valid: {found}" if found else ""

    if not rectangles:
        return Rule(lambda v: _integer(v) and valid(v), text, nearest)

    def sides(value: Any) -> tuple[int, int] | None:
        try:
            return as_size(value)
        except ValueError:
            return None

    def hint(value: Any) -> str:
        found = sides(value)
        return "; ".join(f"{name} {nearest(side)}" for name, side in zip(("height", "width"), found or ())
                         if not valid(side) and nearest(side))

    return Rule(lambda v: sides(v) is not None and all(valid(side) for side in sides(v)),
                f"a side or a (height, width) pair, each {text}", hint)


def check(owner: str, values: dict[str, Any], rules: dict[str, Rule], constraints: Iterable[Constraint] = ()) -> None:
    """Raise a ValueError for the first of ``values`` that breaks its rule or a constraint."""
    for name, rule in rules.items():
        if name in values and not rule(values[name]):
            hint = rule.hint(values[name]) if rule.hint else ""
            raise ValueError(f"{owner}: {name} must be {rule.text}, got {values[name]!r}" + (f"; {hint}" if hint else ""))
    for constraint in constraints:
        if all(name in values for name in constraint.names) and not constraint.test(
                *(values[name] for name in constraint.names)):
            shown = ", ".join(f"{name}={values[name]!r}" for name in constraint.names)
            raise ValueError(f"{owner}: {constraint.message} (got {shown})")
