"""One pace per provider for the whole deployment, kept in the catalog.

Every process that searches or downloads (each API worker, each flow run, the CLI) reserves the next slot of
a provider in one atomic statement: `next_at = max(next_at, now) + interval`, returning the new value. The
caller waits until its slot (the returned value less the interval) and never holds a lock while it waits.
Postgres re-evaluates a blocked UPDATE on the row it finally gets, and SQLite runs one writer at a time, so
two processes never take the same slot. Clocks are the hosts' wall clocks: a few milliseconds of skew between
hosts only shifts a slot by as much.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import case, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loraforge.catalog.db import Catalog
from loraforge.catalog.models import SearchPace


@dataclass
class CatalogPacer:
    """Reserves `key`'s slots in the catalog's search_pacing table (one row per provider and purpose), and
    holds them all back when the provider asks to wait; an http.Pacer."""

    catalog: Catalog
    key: str
    clock: Callable[[], float] = field(default=time.time)

    def __call__(self, interval_s: float) -> float:
        now = self.clock()
        return max(0.0, self.reserve(interval_s, now=now) - now)

    def reserve(self, interval_s: float, *, now: float) -> float:
        """Take the provider's next slot: the time (Unix seconds) the call may start."""
        with self.catalog.session() as session:
            next_at = self._reserve(session, now, interval_s)
            if next_at is None:
                session.add(SearchPace(key=self.key, next_at=now + interval_s))
                try:
                    session.commit()
                    return now
                except IntegrityError:  # another process made the row first: take a slot in it
                    session.rollback()
                    next_at = self._reserve(session, now, interval_s)
                    assert next_at is not None
        return next_at - interval_s

    def hold(self, seconds: float) -> None:
        """No call of any process starts before `seconds` from now: a provider's Retry-After, which it
        meant for every client of this deployment, not only the one it answered."""
        until = self.clock() + seconds
        with self.catalog.session() as session:
            statement = (
                update(SearchPace)
                .where(SearchPace.key == self.key)
                .values(next_at=case((SearchPace.next_at > until, SearchPace.next_at), else_=until))
            )
            if session.execute(statement).rowcount == 0:  # type: ignore[attr-defined]
                session.add(SearchPace(key=self.key, next_at=until))
                try:
                    session.commit()
                except IntegrityError:  # made meanwhile by another process: hold it there
                    session.rollback()
                    session.execute(statement)

    def _reserve(self, session: Session, now: float, interval_s: float) -> float | None:
        statement = (
            update(SearchPace)
            .where(SearchPace.key == self.key)
            .values(next_at=case((SearchPace.next_at > now, SearchPace.next_at), else_=now) + interval_s)
            .returning(SearchPace.next_at)
        )
        value = session.execute(statement).scalar_one_or_none()
        return None if value is None else float(value)
