"""Repairs a person asks for: moving a renamed channel's publications, undoing an import or a poll.

Both run in one write transaction (the channel rows locked on PostgreSQL, the whole database on
SQLite), so an import or poll running at the same moment sees the store before or after, never half.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select

from channelwatch.errors import UserError
from channelwatch.store.counts import run_uncounted
from channelwatch.store.models import Channel, Publication, Run

__all__ = ["ChannelRename", "RunUndo", "rename_channel", "undo_run"]

_KIND_LABELS = {"import": "导入", "poll": "抓取"}
_STATUS_LABELS = {"running": "进行中或已中断", "failed": "失败", "rejected": "拒收", "undone": "已撤销", "ok": "成功"}


def _tables() -> tuple[Any, Any, Any]:
    return (
        Channel.__table__,  # type: ignore[attr-defined]
        Publication.__table__,  # type: ignore[attr-defined]
        Run.__table__,  # type: ignore[attr-defined]
    )


@dataclass
class ChannelRename:
    old: str
    new: str
    moved: int  # publications now under the new id
    merged: int  # publications the new id already had (same identity): kept once
    runs: int  # runs now listed under the new id


def rename_channel(
    conn: Connection, office_id: int, old: str, new: str, *, new_kind: str | None = None, force: bool = False
) -> ChannelRename:
    """Move every publication and run of channel ``old`` to channel ``new`` (made if missing).

    A publication ``new`` already holds (same identity) stays once, as the counting rules want of a
    publication seen twice. ``new_kind`` is the kind the config gives ``new``; moving a channel's
    publications into a channel of another kind is refused unless ``force``.
    """
    channel, pub, run = _tables()
    if old == new:
        raise UserError(f"新旧渠道 id 相同（{old}），无需改名")
    rows = {
        r.key: r
        for r in conn.execute(
            select(channel).where(channel.c.office_id == office_id, channel.c.key.in_([old, new])).with_for_update()
        )
    }
    source = rows.get(old)
    if source is None:
        raise UserError(f"数据库中没有本单位渠道 id「{old}」的记录，无可改名（见 channelwatch channels）")
    target = rows.get(new)
    kind = new_kind or (target.kind if target is not None else source.kind)
    if kind != source.kind and not force:
        raise UserError(
            f"渠道「{old}」的类型是 {source.kind}，而「{new}」的类型是 {kind}：类型不同，未改名；"
            "确属同一渠道请加 --force"
        )
    if target is None:
        inserted = conn.execute(
            channel.insert().values(office_id=office_id, key=new, kind=kind, name=source.name)
        ).inserted_primary_key
        assert inserted is not None
        target_id = int(inserted[0])
    else:
        target_id = int(target.id)
    moving = pub.alias("moving")
    twin = (
        select(moving.c.id)
        .where(moving.c.channel_id == source.id)
        .where(select(pub.c.id).where(pub.c.channel_id == target_id, pub.c.identity == moving.c.identity).exists())
    )
    duplicates = [int(i) for i in conn.execute(twin).scalars()]
    for start in range(0, len(duplicates), 500):
        conn.execute(delete(pub).where(pub.c.id.in_(duplicates[start : start + 500])))
    moved = conn.execute(pub.update().where(pub.c.channel_id == source.id).values(channel_id=target_id)).rowcount
    runs = conn.execute(run.update().where(run.c.channel_id == source.id).values(channel_id=target_id)).rowcount
    # The emptied row of ``old`` stays: a process that opened the store before (the daemon) may still
    # hold its id, and an empty channel row is neither counted nor warned about.
    return ChannelRename(old=old, new=new, moved=int(moved or 0), merged=len(duplicates), runs=int(runs or 0))


@dataclass
class RunUndo:
    run_id: int
    channel: str
    kind: str
    source: str
    removed: int  # publications the run had stored first, and no later run saw: deleted
    kept: int  # publications the run stored first that a later run saw again: kept, credited to that run
    successor: int | None = None  # the run the kept publications are credited to now


def undo_run(
    conn: Connection, office_id: int, run_id: int, *, message: str | None = None, also_kept: bool = False
) -> RunUndo:
    """Undo a finished import or poll: the store becomes what it would be had the run never happened.

    Publications the run stored first are deleted — except those a later run saw again (their
    ``last_seen`` is after the run finished): without the undone run, that later run would have
    stored them, so they stay and are credited to the earliest later successful run of the channel.
    The run is kept in the log as ``undone``. Fields the undone run filled in on a publication a
    later run also saw (a title, a repost mark) stay as they are (docs/counting-rules.md).

    ``also_kept`` deletes those seen again too. The store keeps only the last time a publication was seen, not
    by which runs: when the same wrong file was imported several times, every later import "saw" its rows, and
    undoing each import in turn would keep them for ever. The clerk then re-imports the right files, which
    store again whatever of theirs this deleted.
    """
    channel, pub, run = _tables()
    found = conn.execute(
        select(run, channel.c.key)
        .join(channel, channel.c.id == run.c.channel_id)
        .where(run.c.id == run_id, channel.c.office_id == office_id)
    ).first()
    if found is None:
        raise UserError(f"本单位没有编号为 {run_id} 的运行记录（见 channelwatch runs）")
    if found.kind in _KIND_LABELS and found.status == "undone":
        raise UserError(f"运行 {run_id}（{_KIND_LABELS[found.kind]} {found.source}）已撤销，不能撤销两次")
    if found.kind not in _KIND_LABELS or found.status != "ok":
        what = _KIND_LABELS.get(found.kind, found.kind)
        status = _STATUS_LABELS.get(found.status, found.status)
        raise UserError(f"运行 {run_id}（{what}，{status}）不是已成功完成的导入或抓取，不能撤销")
    # Serialise with imports and polls of the channel (PostgreSQL; SQLite's writer lock does it already).
    conn.execute(select(channel.c.id).where(channel.c.id == found.channel_id).with_for_update())
    finished = select(run.c.finished_at).where(run.c.id == run_id).scalar_subquery()
    first_stored = and_(pub.c.channel_id == found.channel_id, pub.c.first_run_id == run_id)
    seen_later = pub.c.last_seen > finished
    kept = 0 if also_kept else int(conn.execute(select(func.count()).where(first_stored, seen_later)).scalar_one())
    successor = None
    if kept:
        successor = conn.execute(
            select(func.min(run.c.id)).where(
                run.c.channel_id == found.channel_id,
                run.c.id > run_id,
                run.c.status == "ok",
                run.c.kind.in_(list(_KIND_LABELS)),
            )
        ).scalar()
        if successor is None:
            # Every later run that saw them was undone too: no run left would have stored them.
            kept = 0
        else:
            conn.execute(pub.update().where(first_stored, seen_later).values(first_run_id=successor))
    with run_uncounted(conn, found.channel_id, run_id):  # PostgreSQL: taken out of the counts set-based
        removed = int(conn.execute(delete(pub).where(first_stored)).rowcount or 0)
    note = f"已撤销：删除由本次运行首次写入的 {removed} 条发布记录"
    if kept:
        note += f"，保留后来又被其他运行看到的 {kept} 条"
    conn.execute(run.update().where(run.c.id == run_id).values(status="undone", message=message or note))
    return RunUndo(
        run_id=run_id,
        channel=str(found.key),
        kind=str(found.kind),
        source=str(found.source),
        removed=removed,
        kept=kept,
        successor=successor,
    )
