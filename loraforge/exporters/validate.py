"""Checks an export before writing it: what a trainer would silently mistrain on or drop."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from loraforge.captioning.tokens import approximate_token_count
from loraforge.errors import InvalidInput
from loraforge.exporters.base import ExportItem, ExportSpec
from loraforge.exporters.buckets import rule_for, upscale_factor
from loraforge.exporters.captions import has_word, render_caption

Severity = Literal["error", "warning", "info"]
TokenCounter = Callable[[str], int]
EXCLUDED_STATUSES = frozenset({"rejected", "duplicate"})


@dataclass(frozen=True)
class Problem:
    check: str
    image_id: str | None
    message: str
    severity: Severity

    def line(self) -> str:
        where = f" [{self.image_id}]" if self.image_id else ""
        return f"{self.severity}: {self.check}{where}: {self.message}"


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No errors (warnings and notes may remain)."""
        return not any(p.severity == "error" for p in self.problems)

    def by_check(self, check: str) -> list[Problem]:
        return [p for p in self.problems if p.check == check]

    def summary(self) -> str:
        """A printable report: counts per check, then every problem on its own line."""
        if not self.problems:
            return "export validation: no problems"
        counts = Counter((p.severity, p.check) for p in self.problems)
        head = ", ".join(f"{n} {check} ({sev})" for (sev, check), n in sorted(counts.items()))
        return "\n".join([f"export validation: {head}", *(f"  {p.line()}" for p in self.problems)])


Check = Callable[[Sequence[ExportItem], ExportSpec, TokenCounter], list[Problem]]
_CHECKS: dict[str, Check] = {}


def _check(name: str) -> Callable[[Check], Check]:
    def decorate(fn: Check) -> Check:
        _CHECKS[name] = fn
        return fn

    return decorate


def validate(
    items: Sequence[ExportItem], spec: ExportSpec, *, tokens: TokenCounter | None = None, strict: bool = False
) -> ValidationReport:
    """Run every check. `tokens` counts a caption's tokens (start/end included) with the trainer's
    tokenizer, e.g. loraforge.captioning.clip_token_count; the default is a vocabulary-free estimate.
    Strict mode raises InvalidInput listing every error and warning."""
    counter = tokens or approximate_token_count
    everything = [*items, *(spec.reg_items or [])]
    report = ValidationReport()
    if not items:
        report.problems.append(Problem("empty", None, "no images to export", "error"))
    for check in _CHECKS.values():
        report.problems.extend(check(items, spec, counter))
    report.problems.extend(_identity_problems(everything))
    if strict and any(p.severity != "info" for p in report.problems):
        raise InvalidInput("export refused in strict mode:\n" + report.summary())
    return report


@_check("missing_caption")
def _missing_caption(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    fallback = render_caption(None, spec) or "nothing"
    return [
        Problem("missing_caption", item.image_id, f"no caption; the .txt will hold {fallback!r}", "error")
        for item in items
        if not (item.caption or "").strip()
    ]


@_check("missing_trigger")
def _missing_trigger(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    trigger = spec.trigger_word
    if not trigger:
        return []
    problems = []
    for item in items:
        text = (item.caption or "").replace("[trigger]", trigger)
        if text.strip() and not has_word(text, trigger):
            if spec.ensure_trigger:
                problems.append(
                    Problem(
                        "missing_trigger",
                        item.image_id,
                        f"caption lacks {trigger!r}; it will be prepended",
                        "warning",
                    )
                )
            else:
                problems.append(
                    Problem(
                        "missing_trigger",
                        item.image_id,
                        f"caption lacks {trigger!r} and ensure_trigger is off",
                        "error",
                    )
                )
    return problems


@_check("caption_too_long")
def _caption_too_long(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    limit = spec.max_caption_tokens or 0
    problems = []
    for item in items:
        count = tokens(render_caption(item.caption, spec))
        if limit and count > limit:
            problems.append(
                Problem(
                    "caption_too_long",
                    item.image_id,
                    f"{count} tokens > {limit}; the trainer truncates the rest",
                    "warning",
                )
            )
    return problems


@_check("small_bucket")
def _small_bucket(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    if spec.batch_size <= 1:
        return []
    rule = rule_for(spec)
    members: dict[tuple[int, int], list[str]] = defaultdict(list)
    for item in items:
        members[rule.place(item.width, item.height).bucket].append(item.image_id)
    return [
        Problem(
            "small_bucket",
            None,
            f"bucket {w}x{h} holds {len(ids)} image(s) < batch size {spec.batch_size}; SimpleTuner "
            f"drops it, others train it in short batches: {', '.join(ids)}",
            "warning",
        )
        for (w, h), ids in sorted(members.items())
        if len(ids) < spec.batch_size
    ]


@_check("upscaled")
def _upscaled(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    rule = rule_for(spec)
    problems = []
    for item in items:
        placement = rule.place(item.width, item.height)
        factor = upscale_factor(item.width, item.height, placement)
        if factor > 1.0:
            w, h = placement.bucket
            problems.append(
                Problem(
                    "upscaled",
                    item.image_id,
                    f"{item.width}x{item.height} is enlarged {factor:.2f}x to fill bucket {w}x{h}",
                    "warning",
                )
            )
    return problems


@_check("rebucketed")
def _rebucketed(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    """A picture the bucket stage cut for its bucket that this trainer would still resize or crop: it was
    bucketed for another trainer, resolution or model."""
    rule = rule_for(spec)
    problems = []
    for item in items:
        placement = rule.place(item.width, item.height)
        if item.bucket is not None and not placement.keeps(item.width, item.height):
            (w, h), (rw, rh) = placement.bucket, placement.resized
            problems.append(
                Problem(
                    "rebucketed",
                    item.image_id,
                    f"{rule.name} would resize {item.width}x{item.height} to {rw}x{rh} and crop {w}x{h}; "
                    f"bucket again for it (loraforge bucket --trainer {spec.format})",
                    "warning",
                )
            )
    return problems


@_check("status")
def _status(items: Sequence[ExportItem], spec: ExportSpec, tokens: TokenCounter) -> list[Problem]:
    problems = []
    for item in [*items, *(spec.reg_items or [])]:
        if item.status in EXCLUDED_STATUSES:
            problems.append(
                Problem("excluded_image", item.image_id, f"image is {item.status} but included", "error")
            )
        elif item.status == "pending":
            problems.append(Problem("uncurated", item.image_id, "image has not been curated yet", "info"))
    return problems


def _identity_problems(items: Sequence[ExportItem]) -> list[Problem]:
    problems = []
    stems = Counter(item.stem for item in items)
    shas = Counter(item.source_sha256 for item in items)
    seen_sha: set[str] = set()
    for item in items:
        if stems[item.stem] > 1:
            problems.append(
                Problem(
                    "duplicate_stem",
                    item.image_id,
                    f"stem {item.stem!r} used {stems[item.stem]} times; files would collide",
                    "error",
                )
            )
        if shas[item.source_sha256] > 1 and item.source_sha256 in seen_sha:
            problems.append(
                Problem(
                    "duplicate_image",
                    item.image_id,
                    f"same bytes ({item.source_sha256[:12]}) included twice",
                    "error",
                )
            )
        seen_sha.add(item.source_sha256)
    return problems
