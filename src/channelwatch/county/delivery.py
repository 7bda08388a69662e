"""The county's quarterly roll-up, delivered to the county's own ``[delivery]`` recipients.

The same delivery log and guarantees as an office's quarterly statistics (delivery/send.py): the
county has its own office row in the store (``COUNTY_KEY``), so its roll-up of a quarter goes out once
per target, a failed target is retried at the next run, and ``--resend`` forces it. A quarter that has
not ended in county time is never sent: its figures would still change.
"""

from __future__ import annotations

from datetime import UTC, datetime

from channelwatch.county.outputs import rollup_markdown, rollup_text, rollup_xlsx_bytes
from channelwatch.county.rollup import CountyRollup, build_rollup
from channelwatch.dates import to_office
from channelwatch.delivery.send import Attachment, DeliveryOutcome, Outgoing, deliver
from channelwatch.errors import UserError
from channelwatch.instance.config import Instance
from channelwatch.stats.figures import Period
from channelwatch.store import Store

__all__ = ["county_outgoing", "deliver_county_quarterly"]


def county_outgoing(
    county: Instance, own: Store, stores: dict[str, Store], year: int, quarter: int, *, now: datetime | None = None
) -> tuple[CountyRollup, Outgoing]:
    rollup = build_rollup(county, own, stores, Period(year, quarter=quarter), now=now)
    outgoing = Outgoing(
        report="quarterly",
        period=f"{year}Q{quarter}",
        subject=rollup.title,
        text=rollup_text(rollup) + "\n（本邮件由 channelwatch 自动生成发送。）\n",
        html=None,
        attachments=[Attachment(f"{rollup.title}.xlsx", rollup_xlsx_bytes(rollup))],
        data=rollup.as_json() | {"markdown": rollup_markdown(rollup)},
    )
    return rollup, outgoing


def deliver_county_quarterly(
    county: Instance,
    own: Store,
    stores: dict[str, Store],
    year: int,
    quarter: int,
    *,
    resend: bool = False,
    job_id: str | None = None,
    now: datetime | None = None,
) -> DeliveryOutcome:
    """Deliver one quarter's roll-up; refused while the quarter has not ended in county time."""
    moment = now or datetime.now(UTC)
    today = to_office(moment, county.timezone).date()
    period = Period(year, quarter=quarter)
    if period.end >= today:
        raise UserError(f"{period.label}尚未结束（截至 {period.end.isoformat()}），汇总数字还会变化，不发送")
    _rollup, outgoing = county_outgoing(county, own, stores, year, quarter, now=moment)
    return deliver(own, outgoing, resend=resend, job_id=job_id)
