"""Schedule settings of the maintenance flows: seconds between runs, a cron expression, or "off"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """One of `interval_s` or `cron`; neither means the flow is served but runs only when asked."""

    interval_s: int | None = None
    cron: str | None = None

    @property
    def active(self) -> bool:
        return self.interval_s is not None or self.cron is not None


def parse_schedule(text: str) -> Schedule:
    """`"60"` → every 60 s, `"0 3 * * *"` → daily at 03:00 UTC (cron), `"off"` → not scheduled."""
    value = text.strip()
    if value.lower() in ("off", "none", ""):
        return Schedule()
    if value.isdigit():
        seconds = int(value)
        if seconds < 1:
            raise ValueError("an interval must be at least 1 second")
        return Schedule(interval_s=seconds)
    fields = value.split()
    allowed = set("0123456789*/,-?abcdefghijklmnopqrstuvwxyz")  # numbers, steps, ranges, MON, JAN...
    if len(fields) != 5 or not all(set(field.lower()) <= allowed for field in fields):
        raise ValueError(f"{value!r} is neither seconds, a 5-field cron expression, nor 'off'")
    return Schedule(cron=value)
