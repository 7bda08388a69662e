"""Which findings to mail: those that appeared or got worse, each at most once a day (docs/inspection.md).

``InspectionAlert`` remembers, per (channel, rule), the level and measure last mailed and the day.
A finding is *due* when it was never mailed, or its level rose (预警 → 否决风险), or its measure
grew (more stale columns, more dead links, more days), and it was not mailed today already. A
finding that improved is remembered at its better state without a mail, so that a later worsening
is mailed again; a finding that disappeared is forgotten, so that its return is mailed.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from channelwatch import store
from channelwatch.checks.rules import LEVEL_RANK, Finding, Inspection
from channelwatch.store import Store
from channelwatch.store.checkstate import InspectionAlert

__all__ = ["due_findings", "remember"]


def due_findings(opened: Store, inspection: Inspection, today: date) -> list[Finding]:
    """The findings to mail now; also forgets findings that are gone and notes those that improved."""
    table = InspectionAlert.__table__  # type: ignore[attr-defined]
    current = {(f.channel, f.rule): f for f in inspection.findings}
    due: list[Finding] = []
    with store.write(opened.engine) as conn:
        known = {
            (row.channel_key, row.rule): row
            for row in conn.execute(select(table).where(table.c.office_id == opened.office_id))
        }
        for key, row in known.items():
            finding = current.get(key)
            if finding is None:
                conn.execute(table.delete().where(table.c.id == row.id))
            elif (LEVEL_RANK[finding.level], finding.measure) < (LEVEL_RANK[row.level], row.measure):
                conn.execute(
                    table.update()
                    .where(table.c.id == row.id)
                    .values(level=finding.level, measure=finding.measure, updated_at=store.utc_now())
                )
        for key, finding in current.items():
            last = known.get(key)
            if last is None:
                due.append(finding)
                continue
            worse = LEVEL_RANK[finding.level] > LEVEL_RANK[last.level] or (
                finding.level == last.level and finding.measure > last.measure
            )
            if worse and last.mailed_on != today.isoformat():
                due.append(finding)
    return due


def remember(opened: Store, findings: list[Finding], today: date) -> None:
    """Record ``findings`` as mailed today."""
    table = InspectionAlert.__table__  # type: ignore[attr-defined]
    now = store.utc_now()
    with store.write(opened.engine) as conn:
        for finding in findings:
            values = {
                "level": finding.level,
                "measure": finding.measure,
                "mailed_on": today.isoformat(),
                "updated_at": now,
            }
            updated = conn.execute(
                table.update()
                .where(
                    table.c.office_id == opened.office_id,
                    table.c.channel_key == finding.channel,
                    table.c.rule == finding.rule,
                )
                .values(**values)
            )
            if not updated.rowcount:
                conn.execute(
                    table.insert().values(
                        office_id=opened.office_id, channel_key=finding.channel, rule=finding.rule, **values
                    )
                )
