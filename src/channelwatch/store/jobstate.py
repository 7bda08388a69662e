"""What the daemon remembers between runs: job state, job runs and the delivery log.

Every row here is written in its own short transaction, the same way ``ingest`` records a ``Run``:

- a ``JobRun`` is inserted as ``running`` before the job starts and closed when it ends, so a
  process killed in the middle leaves a visible interrupted run and nothing half-written;
- ``JobState.last_fire`` (the scheduled time the job last ran for) moves only when a run *ends*,
  in the same transaction that closes the run: a run killed half way is therefore still "missed"
  and the catch-up on the next start runs it again — every action is idempotent, so running it
  again never doubles a count;
- a ``Delivery`` row is created ``pending`` before anything is sent, is ``sending`` while the
  SMTP/webhook exchange is under way, and becomes ``sent`` or ``failed`` after it. Pending and
  failed deliveries are retried at the next run of the report job, so a quarter is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, Index, Text, UniqueConstraint, select
from sqlmodel import Field, SQLModel

from channelwatch.store import db

__all__ = [
    "Delivery",
    "JobRun",
    "JobState",
    "JobStateView",
    "finish_job_run",
    "job_states",
    "register_jobs",
    "start_job_run",
]


def _utc(nullable: bool = True) -> Any:
    return Column(DateTime(timezone=True), nullable=nullable)


class JobState(SQLModel, table=True):
    __tablename__ = "job_state"
    __table_args__ = (UniqueConstraint("office_id", "job_id", name="uq_job_state"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    job_id: str
    registered_at: datetime = Field(sa_column=_utc(nullable=False))  # first seen by a daemon
    last_fire: datetime | None = Field(default=None, sa_column=_utc())  # scheduled time last run for
    last_started: datetime | None = Field(default=None, sa_column=_utc())
    last_finished: datetime | None = Field(default=None, sa_column=_utc())
    last_status: str | None = None  # running | ok | failed | skipped
    last_message: str | None = Field(default=None, sa_type=Text)


class JobRun(SQLModel, table=True):
    __tablename__ = "job_run"
    __table_args__ = (Index("ix_job_run_job", "office_id", "job_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    job_id: str
    action: str
    trigger: str  # schedule | catch-up | manual
    scheduled_for: datetime | None = Field(default=None, sa_column=_utc())
    started_at: datetime = Field(sa_column=_utc(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=_utc())
    status: str = "running"  # running | ok | failed | skipped
    message: str | None = Field(default=None, sa_type=Text)


class Delivery(SQLModel, table=True):
    """One request to deliver one report for one period to one target (outbox, email, webhook)."""

    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_report", "office_id", "report", "period", "target"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id")
    report: str  # quarterly | freshness
    period: str  # 2020Q4, or a date for freshness warnings
    target: str  # outbox | email | webhook
    status: str = "pending"  # pending | sending | sent | failed | superseded
    attempts: int = 0
    message_id: str | None = None  # the e-mail Message-ID, the same on every attempt
    created_at: datetime = Field(sa_column=_utc(nullable=False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=_utc())
    sent_at: datetime | None = Field(default=None, sa_column=_utc())
    message: str | None = Field(default=None, sa_type=Text)
    job_id: str | None = None


def _table(model: Any) -> Any:
    return model.__table__


@dataclass
class JobStateView:
    job_id: str
    registered_at: datetime
    last_fire: datetime | None
    last_started: datetime | None
    last_finished: datetime | None
    last_status: str | None
    last_message: str | None


def register_jobs(engine: Engine, office_id: int, job_ids: list[str], now: datetime | None = None) -> None:
    """Remember when a daemon first saw each job: catch-up never reaches back before that."""
    moment = now or db.utc_now()
    table = _table(JobState)
    with db.write(engine) as conn:
        known = set(conn.execute(select(table.c.job_id).where(table.c.office_id == office_id)).scalars())
        for job_id in job_ids:
            if job_id not in known:
                conn.execute(table.insert().values(office_id=office_id, job_id=job_id, registered_at=moment))


def job_states(engine: Engine, office_id: int) -> dict[str, JobStateView]:
    table = _table(JobState)
    with db.read(engine) as conn:
        rows = conn.execute(select(table).where(table.c.office_id == office_id))
        return {
            row.job_id: JobStateView(
                job_id=row.job_id,
                registered_at=db.as_utc(row.registered_at),
                last_fire=db.as_utc(row.last_fire) if row.last_fire else None,
                last_started=db.as_utc(row.last_started) if row.last_started else None,
                last_finished=db.as_utc(row.last_finished) if row.last_finished else None,
                last_status=row.last_status,
                last_message=row.last_message,
            )
            for row in rows
        }


def _ensure_state(conn: Any, office_id: int, job_id: str, moment: datetime) -> None:
    table = _table(JobState)
    found = conn.execute(select(table.c.id).where(table.c.office_id == office_id, table.c.job_id == job_id)).scalar()
    if found is None:
        conn.execute(table.insert().values(office_id=office_id, job_id=job_id, registered_at=moment))


def start_job_run(
    engine: Engine,
    office_id: int,
    job_id: str,
    action: str,
    trigger: str,
    scheduled_for: datetime | None,
) -> int:
    moment = db.utc_now()
    runs, states = _table(JobRun), _table(JobState)
    with db.write(engine) as conn:
        _ensure_state(conn, office_id, job_id, moment)
        inserted = conn.execute(
            runs.insert().values(
                office_id=office_id,
                job_id=job_id,
                action=action,
                trigger=trigger,
                scheduled_for=scheduled_for,
                started_at=moment,
                status="running",
            )
        ).inserted_primary_key
        assert inserted is not None
        run_id = inserted[0]
        conn.execute(
            states.update()
            .where(states.c.office_id == office_id, states.c.job_id == job_id)
            .values(last_started=moment, last_status="running", last_message=None)
        )
    return int(run_id)


def finish_job_run(
    engine: Engine,
    run_id: int,
    status: str,
    message: str | None,
    *,
    scheduled_for: datetime | None = None,
) -> None:
    """Close a run and, in the same transaction, move the job's ``last_fire`` to the time it ran for."""
    moment = db.utc_now()
    runs, states = _table(JobRun), _table(JobState)
    with db.write(engine) as conn:
        run = conn.execute(select(runs).where(runs.c.id == run_id)).one()
        conn.execute(
            runs.update().where(runs.c.id == run_id).values(status=status, message=message, finished_at=moment)
        )
        values: dict[str, Any] = {"last_finished": moment, "last_status": status, "last_message": message}
        if scheduled_for is not None:
            state = conn.execute(
                select(states.c.last_fire).where(states.c.office_id == run.office_id, states.c.job_id == run.job_id)
            ).scalar()
            if state is None or db.as_utc(state) < scheduled_for:
                values["last_fire"] = scheduled_for
        conn.execute(
            states.update().where(states.c.office_id == run.office_id, states.c.job_id == run.job_id).values(**values)
        )


def recent_job_runs(engine: Engine, office_id: int, job_id: str | None = None, limit: int = 20) -> list[Any]:
    runs = _table(JobRun)
    query = select(runs).where(runs.c.office_id == office_id)
    if job_id is not None:
        query = query.where(runs.c.job_id == job_id)
    with db.read(engine) as conn:
        return list(conn.execute(query.order_by(runs.c.id.desc()).limit(limit)))
