"""The registry of quality checks: each check is one module under checks/ with one @register_check.

A check maps ImageFeatures to a score in 0..1 where HIGHER MEANS MORE LIKELY THE ISSUE, and flags the
image when the score reaches its threshold. Thresholds are named defaults the dataset settings override
by check name.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from loraforge.curation.features import ImageFeatures
from loraforge.errors import InvalidInput

TARGET_RESOLUTIONS = {"sd15": 512, "sdxl": 1024, "flux": 1024}
"""Training resolution (side of the square bucket) of each target model."""


@dataclass(frozen=True)
class CheckContext:
    """What a check may know beyond the image: the target model's resolution and threshold overrides."""

    target_resolution: int = 1024
    thresholds: Mapping[str, float] = field(default_factory=dict)
    reject: frozenset[str] = frozenset()
    """Checks that only tag by default (grayscale) which the user asked to reject on."""

    @classmethod
    def for_model(
        cls,
        target_model: str,
        *,
        thresholds: Mapping[str, float] | None = None,
        reject: Iterable[str] = (),
    ) -> CheckContext:
        try:
            resolution = TARGET_RESOLUTIONS[target_model]
        except KeyError as exc:
            raise InvalidInput(
                f"unknown target model {target_model!r}; use one of {sorted(TARGET_RESOLUTIONS)}"
            ) from exc
        return cls(target_resolution=resolution, thresholds=dict(thresholds or {}), reject=frozenset(reject))


class Check:
    """Base of every check. Subclasses set name, default_threshold and describe, and implement score()."""

    name: ClassVar[str] = ""
    default_threshold: ClassVar[float] = 0.5
    describe: ClassVar[str] = ""
    """What a high score means, in words a user reads next to the number."""
    tag: ClassVar[str | None] = None
    """A check with a tag describes rather than faults: a flagged picture is kept and its caption gets the
    tag ("black and white photo"), unless the user asks to reject on the check (CheckContext.reject)."""

    def score(self, features: ImageFeatures, *, context: CheckContext) -> float:
        raise NotImplementedError

    def flag(self, score: float, threshold: float) -> bool:
        return score >= threshold

    def threshold(self, context: CheckContext) -> float:
        return float(context.thresholds.get(self.name, self.default_threshold))


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    score: float
    flagged: bool
    threshold: float
    rejects: bool = True
    """Whether a flag rejects the picture (else it only tags it)."""


_CHECKS: dict[str, type[Check]] = {}


def register_check(name: str) -> Callable[[type[Check]], type[Check]]:
    """Class decorator that makes a check known under `name`."""

    def add(cls: type[Check]) -> type[Check]:
        if name in _CHECKS and _CHECKS[name] is not cls:
            raise ValueError(f"check {name!r} is registered twice")
        cls.name = name
        _CHECKS[name] = cls
        return cls

    return add


def all_checks() -> dict[str, Check]:
    """Every registered check by name, importing each module under checks/ on first use."""
    _import_check_modules()
    return {name: cls() for name, cls in sorted(_CHECKS.items())}


def evaluate(features: ImageFeatures, context: CheckContext) -> list[CheckOutcome]:
    """Run every registered check on one image's features."""
    checks = all_checks()
    unknown = set(context.thresholds) - set(checks)
    if unknown:
        raise InvalidInput(f"thresholds for unknown checks {sorted(unknown)}; known: {sorted(checks)}")
    check_reject_names(context.reject)
    outcomes = []
    for name, check in checks.items():
        score = min(1.0, max(0.0, float(check.score(features, context=context))))
        threshold = check.threshold(context)
        rejects = check.tag is None or name in context.reject
        outcomes.append(CheckOutcome(name, round(score, 4), check.flag(score, threshold), threshold, rejects))
    return outcomes


def tagging_checks() -> dict[str, str]:
    """Check name -> caption tag of every check that tags instead of rejecting by default."""
    return {name: check.tag for name, check in all_checks().items() if check.tag}


def check_reject_names(names: Iterable[str]) -> None:
    """The checks one may ask to reject on are the tagging ones (the others always reject)."""
    tagging = tagging_checks()
    for name in names:
        if name not in tagging:
            raise InvalidInput(
                f"{name!r} is not a check that only tags; the ones that do: {', '.join(sorted(tagging))}"
            )


@functools.cache
def _import_check_modules() -> None:
    from loraforge.curation import checks

    for module in pkgutil.iter_modules(checks.__path__):
        importlib.import_module(f"{checks.__name__}.{module.name}")
