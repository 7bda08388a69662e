"""Schema creation and upgrades; the office and its channels as rows.

Schema upgrades use a small versioned runner (``_MIGRATIONS``) rather than Alembic: the schema is a
handful of tables, it must upgrade the same way on SQLite and PostgreSQL, and an office's IT person
should never have to run a separate migration tool — opening the store upgrades it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, inspect, or_, select, text
from sqlmodel import SQLModel

from channelwatch.errors import ConfigError
from channelwatch.store.counts import channel_first_months, channel_totals, install_counts, install_pg_triggers
from channelwatch.store.db import write
from channelwatch.store.models import Channel, Office, Publication, Run, SchemaVersion

if TYPE_CHECKING:
    from channelwatch.instance.config import Instance

# --- schema -----------------------------------------------------------------------------------------


def _all_tables() -> None:
    """Register every table on the metadata before ``create_all``: the daemon's, the reported figures' and
    the checks'. Imported here rather than with this module: a command that only reads figures (a county
    office's ``summary``) does not pay for defining tables it never touches."""
    from channelwatch.store import checkstate, jobstate, reported  # noqa: F401


def _create_v1(conn: Connection) -> None:
    _all_tables()
    SQLModel.metadata.create_all(conn)


def _office_key_v2(conn: Connection) -> None:
    """The office's stable key (``[office] id``). A new database got it from ``create_all`` already."""
    if "key" in {column["name"] for column in inspect(conn).get_columns("office")}:
        return
    conn.execute(text("ALTER TABLE office ADD COLUMN key VARCHAR"))
    conn.execute(text("CREATE UNIQUE INDEX ix_office_key ON office (key)"))


def _hash_long_identities(conn: Connection) -> None:
    """Identities longer than ``IDENTITY_MAX`` are stored as their hash (upsert.py): convert those stored before."""
    from channelwatch.store.upsert import IDENTITY_MAX, long_identity

    pub = Publication.__table__  # type: ignore[attr-defined]
    long_rows = conn.execute(select(pub.c.id, pub.c.identity).where(func.length(pub.c.identity) > IDENTITY_MAX)).all()
    for row_id, identity in long_rows:
        conn.execute(pub.update().where(pub.c.id == row_id).values(identity=long_identity(identity)))


def _reported_figures_v3(conn: Connection) -> None:
    """The figures offices report on quarterly sheets (store/reported.py); ``create_all`` skips existing tables."""
    _all_tables()
    SQLModel.metadata.create_all(conn)


def _inspection_tables_v4(conn: Connection) -> None:
    """v4: the inspection checks' tables (page observations, probes, link checks, alerts mailed)."""
    from channelwatch.store.checkstate import InspectionAlert, LinkCheck, LinkFinding, PageObservation, ProbeResult

    models: list[Any] = [PageObservation, ProbeResult, LinkCheck, LinkFinding, InspectionAlert]
    tables = [m.__table__ for m in models]
    SQLModel.metadata.create_all(conn, tables=tables)


def _add_counts_v5(conn: Connection) -> None:
    # Counts per channel and period kept by triggers beside the publications (store/counts.py): figures
    # in time that does not grow with the store. Filled here from what an older store already holds.
    install_counts(conn)


def _reported_unique_to_date_v6(conn: Connection) -> None:
    """A reported sheet's 不同渠道相同信息计1条 for January to the quarter's end (store/reported.py)."""
    if "unique_year_to_date" in {column["name"] for column in inspect(conn).get_columns("reported_sheet")}:
        return
    conn.execute(text("ALTER TABLE reported_sheet ADD COLUMN unique_year_to_date INTEGER"))


def _inspection_verdicts_v8(conn: Connection) -> None:
    """v8: each channel's latest inspection verdict, for the web view (store/checkstate.py)."""
    from channelwatch.store.checkstate import InspectionVerdict

    SQLModel.metadata.create_all(conn, tables=[InspectionVerdict.__table__])  # type: ignore[attr-defined]


def _listing_index_v9(conn: Connection) -> None:
    """v9: the index the web view pages a channel's publications by (models.py, ``ix_publication_listing``)."""
    conn.execute(
        text(
            "CREATE INDEX IF NOT EXISTS ix_publication_listing "
            "ON publication (channel_id, local_year, local_month, published_at, is_repost)"
        )
    )


def _deferrable_pg_counts_v10(conn: Connection) -> None:
    """v10: PostgreSQL's counting triggers leave a bulk upsert's own rows to its set-based count (store/counts.py)."""
    install_pg_triggers(conn)


def _run_lookup_indexes_v11(conn: Connection) -> None:
    """v11: a channel's latest run of a kind and status, a run by its file's SHA-256, and the latest runs of a
    status (the web view's failed runs), found by index.

    Polls ask each channel's last good poll (the layout alarm), ``channels`` its last poll's time, and an
    import whether the same file was imported before: with only ``channel_id`` indexed, each of these read
    every run of the channel, and an hourly poll adds 8,760 runs a year to each channel. The web view's
    failed runs walked the whole log when failures were rare (2 million runs: 0.34 s, now 1 ms).
    """
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_run_latest ON run (channel_id, kind, status, id)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_run_sha256 ON run (sha256)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_run_status ON run (status, id)"))


def _placeholder_link_identities_v12(conn: Connection) -> None:
    """v12: publications known by a placeholder link (``javascript:void(0);``, ``#``, ``无``, the site's home page)
    are known by their title and date, as new ones are (identity.is_placeholder_link).

    Before, every item of a file sharing such a link was "the same publication": only the first was stored. Its
    identity is recomputed here so that importing the file again adds the others instead of a second copy of
    it. A row whose new identity another row already has is left as it is (nothing is deleted by an upgrade).
    """
    from channelwatch.identity import identity_key, is_placeholder_link
    from channelwatch.store.upsert import long_identity

    pub = Publication.__table__  # type: ignore[attr-defined]
    channel = Channel.__table__  # type: ignore[attr-defined]
    # The identities placeholders were stored under (their canonical form after "url:"): a narrow cut in SQL,
    # the rule itself (is_placeholder_link) in Python.
    lowered = func.lower(pub.c.identity)
    prefixes = [lowered.like(f"url:{scheme}%") for scheme in ("javascript:", "about:", "mailto:", "data:", "tel:")]
    roots = [lowered.like(f"url:%{end}") for end in ("/", "/index.html", "/index.htm", "/index.shtml")]
    words = lowered.in_([f"url:{word}" for word in ("无", "暂无", "空", "-", "--", "—", "null", "none", "n/a", "na")])
    candidates = conn.execute(
        select(pub.c.id, pub.c.channel_id, pub.c.identity, pub.c.url, pub.c.title, pub.c.local_date, channel.c.kind)
        .join(channel, channel.c.id == pub.c.channel_id)
        .where(or_(*prefixes, *roots, words), pub.c.url.is_not(None), pub.c.title.is_not(None))
    ).all()
    for row_id, channel_id, identity, url, title, local_date, kind in candidates:
        if not is_placeholder_link(url):
            continue
        day = local_date if not isinstance(local_date, str) else date.fromisoformat(local_date)
        renamed = long_identity(identity_key(platform_id=None, url=url, title=title, local_day=day, kind=kind))
        if renamed == identity:
            continue
        taken = conn.execute(select(pub.c.id).where(pub.c.channel_id == channel_id, pub.c.identity == renamed)).first()
        if taken is None:
            conn.execute(pub.update().where(pub.c.id == row_id).values(identity=renamed))


# Each entry upgrades the schema from version i to i + 1. Append; never edit a released step.
# Steps after the first must accept a database that ``_create_v1`` made from today's models.
_MIGRATIONS: list[Callable[[Connection], None]] = [
    _create_v1,
    _office_key_v2,
    _hash_long_identities,
    _reported_figures_v3,
    _inspection_tables_v4,
    _add_counts_v5,
    _reported_unique_to_date_v6,
    _inspection_verdicts_v8,
    _listing_index_v9,
    _deferrable_pg_counts_v10,
    _run_lookup_indexes_v11,
    _placeholder_link_identities_v12,
]
SCHEMA_VERSION = len(_MIGRATIONS)


def schema_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    found = conn.execute(select(SchemaVersion.version)).scalar()  # type: ignore[call-overload]
    return int(found or 0)


def ensure_schema(engine: Engine) -> int:
    """Create or upgrade the schema to ``SCHEMA_VERSION``; returns the version found before."""
    with write(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Two processes opening a fresh database at once must not both create the tables.
            conn.execute(text("SELECT pg_advisory_xact_lock(727001)"))
        before = schema_version(conn)
        if before > SCHEMA_VERSION:
            raise ConfigError(f"数据库结构版本为 {before}，高于本程序支持的 {SCHEMA_VERSION}：请升级 channelwatch")
        for step in _MIGRATIONS[before:]:
            step(conn)
        if before != SCHEMA_VERSION:
            table = SchemaVersion.__table__  # type: ignore[attr-defined]
            conn.execute(table.delete())
            conn.execute(table.insert().values(id=1, version=SCHEMA_VERSION))
    return before


# --- offices and channels ------------------------------------------------------------------------------


@dataclass
class OfficeMatch:
    """The office row an instance uses, and what opening the store changed about it (for a notice)."""

    id: int
    notices: list[str] = field(default_factory=list)


def _offices(conn: Connection) -> list[Any]:
    office = Office.__table__  # type: ignore[attr-defined]
    return list(conn.execute(select(office.c.id, office.c.key, office.c.name).order_by(office.c.id)))


def find_office(conn: Connection, key: str | None, name: str) -> tuple[Any | None, str | None]:
    """The stored office an instance's ``[office]`` section means, without changing anything.

    Rules (docs/configuration.md, ``[office] id``): with an id, the office of that id; else an office
    without id of the same name, or the only office of the database if it has no id yet (a database
    from before ids, whose name was changed while the id was added). Without an id: the office of
    the same name, else the only office of the database. Returns ``(row, how)`` with ``how`` one of
    ``key``, ``name``, ``only``; ``(None, None)`` when a new office is to be made.
    """
    offices = _offices(conn)
    if key is not None:
        for row in offices:
            if row.key == key:
                return row, "key"
        for row in offices:
            if row.key is None and row.name == name:
                return row, "name"
        if len(offices) == 1 and offices[0].key is None:
            return offices[0], "only"
        return None, None
    for row in offices:
        if row.name == name:
            return row, "name"
    if len(offices) == 1:
        return offices[0], "only"
    if offices:
        known = "；".join(f"「{r.name}」" + (f"（id = {r.key}）" if r.key else "（无 id）") for r in offices)
        raise ConfigError(
            f"数据库中有 {len(offices)} 个单位：{known}，配置的单位名称「{name}」与其中任何一个都不同。"
            "请在配置文件 [office] 中用 id 指明本实例的单位（id 确定后不要再改，名称可以随时修改）"
        )
    return None, None


def sync_office(conn: Connection, name: str, short_name: str, timezone: str, key: str | None = None) -> OfficeMatch:
    """Find (or create) the instance's office and bring its label fields up to date with the config."""
    office = Office.__table__  # type: ignore[attr-defined]
    found, _how = find_office(conn, key, name)
    if found is None:
        taken = conn.execute(select(office.c.key).where(office.c.name == name)).first()
        if taken is not None:
            raise ConfigError(
                f"数据库中已有名为「{name}」的单位（id = {taken.key}），与配置的 [office] id = {key} 不符："
                "请改用该 id，或换一个单位名称"
            )
        inserted = conn.execute(
            office.insert().values(key=key, name=name, short_name=short_name, timezone=timezone)
        ).inserted_primary_key
        return OfficeMatch(int(inserted[0]))  # type: ignore[index]
    match = OfficeMatch(int(found.id))
    if found.name != name:
        clash = conn.execute(select(office.c.id).where(office.c.name == name, office.c.id != found.id)).first()
        if clash is not None:
            raise ConfigError(f"数据库中已有另一个名为「{name}」的单位，不能把本单位改名为它")
        match.notices.append(f"单位名称已由「{found.name}」改为「{name}」，原有的发布记录仍归本单位")
    if key is not None and found.key is None:
        match.notices.append(f"数据库中的单位「{found.name}」已记为 [office] id = {key}")
    values: dict[str, Any] = {"name": name, "short_name": short_name, "timezone": timezone}
    if key is not None:
        values["key"] = key
    conn.execute(office.update().where(office.c.id == found.id).values(**values))
    return match


def latest_run_ids(channel_ids: list[int], *, kind: str = "poll", status: str = "ok") -> Any:
    """A query of each channel's latest run id of ``kind`` and ``status``: one probe of ``ix_run_latest``
    per channel, however many runs the channel has had (an hourly poll adds 8,760 a year)."""
    run = Run.__table__  # type: ignore[attr-defined]
    channel = Channel.__table__  # type: ignore[attr-defined]
    latest = (
        select(func.max(run.c.id))
        .where(run.c.channel_id == channel.c.id, run.c.kind == kind, run.c.status == status)
        .scalar_subquery()
    )
    return select(latest).where(channel.c.id.in_(channel_ids))


def office_publication_count(conn: Connection, office_id: int) -> int:
    """How many publications the office has on any channel (configured or not), from the counts table."""
    channel = Channel.__table__  # type: ignore[attr-defined]
    ids = [int(i) for i in conn.execute(select(channel.c.id).where(channel.c.office_id == office_id)).scalars()]
    return sum(channel_totals(conn, ids).values())


def orphan_channels(conn: Connection, office_id: int, configured: list[str]) -> list[tuple[str, int]]:
    """Stored channel ids of the office that the config no longer has, with their publication count.

    Counted from the counts table: a channel renamed away from a million rows costs no more than one.
    """
    channel = Channel.__table__  # type: ignore[attr-defined]
    rows = conn.execute(
        select(channel.c.id, channel.c.key)
        .where(channel.c.office_id == office_id, channel.c.key.not_in(configured))
        .order_by(channel.c.key)
    )
    stored = {int(channel_id): str(key) for channel_id, key in rows}
    totals = channel_totals(conn, list(stored))
    return [(key, totals[channel_id]) for channel_id, key in stored.items() if channel_id in totals]


def orphan_notes(conn: Connection, office_id: int, instance: Instance) -> list[tuple[str, int, str]]:
    """Each channel id holding publications of the office that ``instance``'s config no longer has: the id, its
    publications and what to do about it (``orphan_advice``; in a county its commands carry ``--office``)."""
    configured = [c.id for c in instance.config.channels]
    orphans = orphan_channels(conn, office_id, configured)
    if not orphans:
        return []
    unused = _unused_channels(conn, office_id, configured)
    office = instance.office_key if instance.parent is not None else None
    return [(key, count, orphan_advice(key, unused, office)) for key, count in orphans]


def unrecorded_channels(
    conn: Connection, office_id: int, instance: Instance, last: tuple[int, int]
) -> list[tuple[str, str, tuple[int, int] | None]]:
    """Configured channels without a publication recorded up to the (year, month) ``last``: id, name, and the
    (year, month) of their earliest publication (None: none at all).

    Their 0 for a period up to ``last`` is no count of anything: nothing of theirs was imported or polled
    from that time (a channel added to the config later, an export never imported), which a clerk must be
    told before signing the figure.
    """
    configured = {c.id: c.name for c in instance.config.channels}
    channel = Channel.__table__  # type: ignore[attr-defined]
    rows = conn.execute(
        select(channel.c.id, channel.c.key).where(channel.c.office_id == office_id, channel.c.key.in_(configured))
    )
    stored = {str(key): int(channel_id) for channel_id, key in rows}
    return unrecorded_among(configured, stored, channel_first_months(conn, list(stored.values())), last)


def unrecorded_among(
    configured: dict[str, str], stored: dict[str, int], first: dict[int, tuple[int, int]], last: tuple[int, int]
) -> list[tuple[str, str, tuple[int, int] | None]]:
    """``unrecorded_channels`` from what a caller read already: channel id → name, id → stored id, stored id →
    (year, month) of its earliest publication (``channel_first_months``); for pages that read many offices at once."""
    found: list[tuple[str, str, tuple[int, int] | None]] = []
    for key, name in configured.items():
        earliest = first.get(stored[key]) if key in stored else None
        if earliest is None or earliest > last:
            found.append((key, name, earliest))
    return found


def unrecorded_notes(conn: Connection, office_id: int, instance: Instance, period: Any) -> list[str]:
    """``unrecorded_channels`` up to the end of ``period`` (stats.figures.Period), each said for the clerk."""
    notes = []
    for key, name, earliest in unrecorded_channels(conn, office_id, instance, (period.year, period.months[-1])):
        known = (
            "还没有任何发布记录（没有导入或抓取到过它的数据）"
            if earliest is None
            else f"最早的发布记录在 {earliest[0]}年{earliest[1]}月"
        )
        notes.append(
            f"渠道「{name}」（{key}）{known}，{period.label}它的“0条”只表示没有数据，不是统计出的数字："
            "如果该渠道那时已开通，请先导入它当时的导出记录（或抓取）；如果那时确实还没有开通或没有发布，可忽略本提示"
        )
    return notes


def _unused_channels(conn: Connection, office_id: int, configured: list[str]) -> list[str]:
    """Configured channel ids without a single stored publication, in the config's order.

    Beside an orphan id, one of these is likely the other half of a rename: ``channels rename`` moved the
    publications away from it before the config was edited, or the config was edited first.
    """
    channel = Channel.__table__  # type: ignore[attr-defined]
    rows = conn.execute(
        select(channel.c.id, channel.c.key).where(channel.c.office_id == office_id, channel.c.key.in_(configured))
    )
    stored = {str(key): int(channel_id) for channel_id, key in rows}
    totals = channel_totals(conn, list(stored.values()))
    return [key for key in configured if stored.get(key) not in totals]


def orphan_advice(key: str, unused: list[str], office: str | None = None) -> str:
    """What to do about publications stored under ``key``, a channel id the config no longer has: one clause.

    With a configured channel that has no publication (``unused``) the rename may have gone either way, so
    both ways are named: after ``channels rename old key`` the config still says the old id.
    """
    command = f"channelwatch{f' --office {office}' if office else ''} channels rename {key} <新渠道id>"
    if not unused:
        return f"如果是改了渠道 id，请运行 {command}"
    old = f"渠道 id「{unused[0]}」" if len(unused) == 1 else "渠道 id "
    return (
        f"如果刚用 channels rename 把渠道改成了「{key}」，请把配置文件中的{old}也改为 {key}；"
        f"如果是在配置中改了渠道 id，请运行 {command}"
    )


def sync_channel(conn: Connection, office_id: int, key: str, kind: str, name: str) -> int:
    channel = Channel.__table__  # type: ignore[attr-defined]
    found = conn.execute(select(channel.c.id).where(channel.c.office_id == office_id, channel.c.key == key)).scalar()
    if found is None:
        return int(
            conn.execute(
                channel.insert().values(office_id=office_id, key=key, kind=kind, name=name)
            ).inserted_primary_key[0]  # type: ignore[index]
        )
    conn.execute(channel.update().where(channel.c.id == found).values(kind=kind, name=name))
    return int(found)
