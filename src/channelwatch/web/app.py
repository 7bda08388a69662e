"""The web view: a Starlette application over the read-only store.

Pages are Jinja2 templates under ``web/`` that an instance overrides by placing a file of the same
name in its ``templates/web/`` folder, like the report templates. Endpoints are plain functions:
Starlette runs them in its thread pool, so a slow report download never holds up other pages.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from channelwatch.errors import UserError
from channelwatch.instance.config import KIND_LABELS, Instance
from channelwatch.stats.freshness import configured_freshness, newest_publications
from channelwatch.store.counts import channel_first_months, channel_months, channel_totals
from channelwatch.store.models import RUN_KIND_LABELS, RUN_STATUS_LABELS
from channelwatch.store.opened import Store
from channelwatch.store.schema import orphan_advice, orphan_notes, unrecorded_among
from channelwatch.terminal import shown
from channelwatch.web import data
from channelwatch.web.auth import COOKIE_NAME, Gate
from channelwatch.web.svg import monthly_chart

__all__ = ["SECURITY_HEADERS", "create_app"]

# No script may run at all (the view has none), styles and images only from the view itself
# (SVG charts are inline markup, not scripts), and no other site may frame the pages.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}
PUBLIC_PATHS = ("/login", "/healthz")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class BadRequest(UserError):
    """A query parameter the view cannot use: shown as a 400 page naming the parameter."""


class NotFound(UserError):
    pass


def template_environment(templates_dir: Path | None) -> Environment:
    loaders: list[Any] = []
    if templates_dir is not None and templates_dir.is_dir():
        loaders.append(FileSystemLoader(str(templates_dir)))
    loaders.append(PackageLoader("channelwatch.web", "templates"))
    # Autoescape every template whatever its name: titles in the store are untrusted text. And every value is
    # shown as the terminal shows it: a right-to-left override in a title ("\u202egpj.exe") would otherwise
    # display reversed ("exe.jpg"), a control character invisibly.
    return Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined, finalize=_visible)


def _visible(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Markup):
        return shown(value)
    return value


class Guard:
    """Security headers on every answer; the login gate in front of every path but the public ones."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # The server's own time for the answer, for monitoring and scripts/bench_web.py.
                headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                if "cache-control" not in headers:
                    headers["cache-control"] = "no-store"
            await send(message)

        path: str = scope["path"]
        if self.gate.required and path not in PUBLIC_PATHS and not path.startswith("/static/"):
            request = Request(scope)
            if not self.gate.valid(request.cookies.get(COOKIE_NAME)):
                target = path + ("?" + request.url.query if request.url.query else "")
                response = RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


@dataclass
class OfficeScope:
    """The office a page is about: the instance's own, or one of a county's (``/offices/<id>/…``)."""

    instance: Instance
    prefix: str = ""  # what the office's page paths start with: "" or /offices/<id>
    key: str | None = None  # the county office's id

    @property
    def home(self) -> str:
        return self.prefix or "/"


@dataclass
class WebView:
    instance: Instance  # the instance served: one office, or a county with its offices
    readonly: data.ReadOnlyStore
    gate: Gate
    env: Environment

    # --- helpers ------------------------------------------------------------------------------------

    @property
    def zone(self) -> str:
        return self.instance.timezone

    @property
    def county(self) -> bool:
        return self.instance.is_county

    def scope_of(self, request: Request, office: str | None = None) -> OfficeScope:
        """The office of this request: the path's ``<id>`` (or ``office``) in a county, the instance otherwise."""
        if not self.county:
            return OfficeScope(self.instance)
        key = office if office is not None else request.path_params.get("office")
        if not key:
            raise BadRequest("县级实例中请选择单位（参数 office）")
        if key not in self.instance.offices:
            raise NotFound(f"没有单位「{key}」")
        return OfficeScope(self.instance.offices[key], prefix=f"/offices/{quote(key)}", key=key)

    def page(self, request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("year", None)
        context.setdefault("years", [])
        context.setdefault("county", self.county)
        context.setdefault("scope", None)
        html = self.env.get_template(f"web/{template}").render(
            office=self.instance.config.office.name,
            login_required=self.gate.required,
            path=request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def year_of(self, request: Request) -> int:
        return _int_param(request, "year", 1990, 2100, default=data.office_today(self.zone).year)

    def years(self, conn: Any, channel_ids: list[int], selected: int) -> tuple[list[int], int | None]:
        """Years to choose from (the oldest stored to this year, newest first) and the newest year with data."""
        this_year = data.office_today(self.zone).year
        first, newest = data.year_range(conn, channel_ids)
        low = this_year if first is None else min(this_year, first)
        high = this_year if newest is None else max(this_year, newest)
        return sorted(set(range(low, high + 1)) | {selected}, reverse=True), newest

    # --- pages --------------------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        from channelwatch.reports.summary import summary_sentence
        from channelwatch.stats.figures import comparison_base
        from channelwatch.stats.freshness import freshness

        scope = self.scope_of(request)
        year = self.year_of(request)
        keys = [c.id for c in scope.instance.config.channels]
        if self.county and not keys:
            return self.sheet_office(request, scope, year)
        settings = self.instance.config.freshness
        today = data.office_today(self.zone)
        with self.readonly.reader() as conn:
            office_id = self.readonly.office_id(conn, scope.instance)
            if office_id is None:
                return self.page(request, "empty.html.j2", year=year, scope=scope)
            ids = self.readonly.channel_ids(conn, office_id)
            summary = data.year_figures(conn, office_id, year, keys)
            previous = data.year_figures(conn, office_id, year - 1, keys)
            found = freshness(
                conn,
                office_id,
                self.zone,
                warn_days=settings.warn_days,
                limit_days=settings.limit_days,
                count_totals=False,
            )
            fresh = {f.key: f for f in found}
            years, newest = self.years(conn, [ids[k] for k in keys if k in ids], year)
            judged = data.verdicts(conn, [office_id]).get(office_id, {})
            orphans = [
                {"office": None, "channel": key, "count": count, "advice": advice}
                for key, count, advice in orphan_notes(conn, office_id, scope.instance)
            ]
        sentence = summary_sentence(summary, self.instance.templates_dir, comparison_base(summary, previous))
        current_month = today.month if year == today.year else None
        rows: list[dict[str, Any]] = []
        for figures in summary.channels:
            rows.append(
                {
                    "figures": figures,
                    "kind_label": KIND_LABELS.get(figures.kind, figures.kind),
                    "month_total": figures.by_month.get(current_month, 0) if current_month else None,
                    "fresh": fresh.get(figures.key),
                    "verdict": judged.get(figures.key, data.Verdict()),
                    "chart": monthly_chart(
                        f"{figures.name}{year}年每月发布数量",
                        figures.by_month,
                        figures.reposts_by_month,
                        width=460,
                        height=190,
                    ),
                }
            )
        month_total = sum(r["month_total"] or 0 for r in rows) if current_month else None
        return self.page(
            request,
            "overview.html.j2",
            year=year,
            years=years,
            summary=summary,
            sentence=sentence,
            rows=rows,
            current_month=current_month,
            month_total=month_total,
            settings=settings,
            newest=newest,
            scope=scope,
            orphans=orphans,
            inspected_on=max((v.as_of for v in judged.values()), default=None),
        )

    def sheet_office(self, request: Request, scope: OfficeScope, year: int) -> Response:
        """A county office without channels: it reports by quarterly sheet, its figures are the sheets' (roll-up's)."""
        from channelwatch.county.rollup import build_rollup
        from channelwatch.stats.figures import Period

        assert scope.key is not None
        with self.readonly.reader() as conn:
            own = self._county_store(conn)
            opened = self._office_store(conn, scope.key)
            stored = self.readonly.county_offices(conn)
            channels = self.readonly.office_channels(conn, list(stored.values()))
            years, _newest = self.years(conn, [c for ids in channels.values() for c in ids.values()], year)
        row = build_rollup(self.instance, own, {scope.key: opened}, Period(year)).offices[0]
        return self.page(
            request, "sheet_office.html.j2", year=year, years=years, scope=scope, row=row, kind_labels=KIND_LABELS
        )

    def county_overview(self, request: Request) -> Response:
        """A county's ``/``: its offices, worst two-week state first."""
        from channelwatch.county.rollup import build_rollup
        from channelwatch.stats.figures import Period

        year = self.year_of(request)
        settings = self.instance.config.freshness
        today = data.office_today(self.zone)
        current_month = today.month if year == today.year else None
        offices = self.instance.offices
        with self.readonly.reader() as conn:
            stored = self.readonly.county_offices(conn)
            if not stored:
                return self.page(request, "empty.html.j2", year=year)
            channels = self.readonly.office_channels(conn, list(stored.values()))
            configured = {
                key: [c.id for c in office.config.channels] for key, office in offices.items() if key in stored
            }
            counted = [
                channels[stored[key]][c] for key, ids in configured.items() for c in ids if c in channels[stored[key]]
            ]
            counts = channel_months(conn, counted, year)
            first_months = channel_first_months(conn, counted)
            judged = data.verdicts(conn, list(stored.values()))
            newest_times = newest_publications(conn, counted)
            fresh = {
                key: configured_freshness(
                    offices[key].config.channels,
                    channels[stored[key]],
                    newest_times,
                    offices[key].timezone,
                    warn_days=settings.warn_days,
                    limit_days=settings.limit_days,
                )
                for key in configured
            }
            # Publications under channel ids an office's config no longer has, for all offices at once.
            unconfigured = {
                channel_id: (key, channel)
                for key, ids in configured.items()
                for channel, channel_id in channels[stored[key]].items()
                if channel not in ids
            }
            stranded = channel_totals(conn, list(unconfigured))
            held = channel_totals(conn, counted) if stranded else {}
            orphans: list[dict[str, Any]] = []
            for office_key, channel, count in sorted((*unconfigured[cid], n) for cid, n in stranded.items() if n):
                ids = channels[stored[office_key]]
                unused = [c for c in configured[office_key] if ids.get(c) not in held]
                advice = orphan_advice(channel, unused, office_key)
                orphans.append({"office": office_key, "channel": channel, "count": count, "advice": advice})
            years, newest = self.years(conn, counted, year)
        # Offices that report by sheet have no channels here: their figures are the sheets' (the roll-up's).
        reporting = {key for key, office in offices.items() if key in stored and not office.config.channels}
        sheets: dict[str, Any] = {}
        if reporting:
            with self.readonly.reader() as conn:
                own = self._county_store(conn)
                report_stores = {key: self._office_store(conn, key) for key in reporting}
            rollup = build_rollup(self.instance, own, report_stores, Period(year))
            sheets = {row.id: row for row in rollup.offices}
        rows = []
        for key, office in offices.items():
            row = data.county_office_row(
                key,
                office,
                stored.get(key),
                channels.get(stored.get(key, -1), {}),
                counts,
                fresh.get(key, {}),
                judged.get(stored.get(key, -1), {}),
                current_month,
                sheets.get(key),
                unrecorded_after=[
                    name
                    for _id, name, _first in unrecorded_among(
                        {c.id: c.name for c in office.config.channels},
                        channels.get(stored.get(key, -1), {}),
                        first_months,
                        (year, 12),
                    )
                ],
            )
            rows.append(row)
        rows.sort(key=data.OfficeOverview.severity)
        return self.page(
            request,
            "county.html.j2",
            year=year,
            years=years,
            newest=newest,
            rows=rows,
            current_month=current_month,
            settings=settings,
            orphans=orphans,
            names={key: office.config.office.name for key, office in offices.items()},
            total=sum(r.total for r in rows),
            month_total=sum(r.month_total or 0 for r in rows) if current_month else None,
            reposts=sum(r.reposts for r in rows),
        )

    def _county_store(self, conn: Any) -> Store:
        """The county's own store (its row holds the county's delivery log), as ``build_rollup`` takes it."""
        opened = self.readonly.as_store(conn, self.instance)
        if opened is None:
            raise NotFound("统计库中还没有本县的记录：请先运行 channelwatch county summary 或导入")
        return opened

    def _office_store(self, conn: Any, key: str) -> Store:
        office = self.instance.offices[key]
        opened = self.readonly.as_store(conn, office)
        if opened is None:
            name = office.config.office.name
            raise NotFound(f"统计库中还没有单位「{name}」（{key}）：请先导入、抓取或运行 county 命令")
        return opened

    def channel(self, request: Request) -> Response:
        scope = self.scope_of(request)
        key = request.path_params["key"]
        configured = {c.id: c for c in scope.instance.config.channels}
        if key not in configured:
            raise NotFound(f"没有渠道「{key}」")
        year = self.year_of(request)
        month = _int_param(request, "month", 1, 12, default=None)
        kind = request.query_params.get("type", "")
        if kind not in ("", "original", "repost"):
            raise BadRequest(f"参数 type 的值「{kind}」无效：可选 original（原创）或 repost（转发）")
        repost = None if kind == "" else kind == "repost"
        page_number = _int_param(request, "page", 1, 10**9, default=1)
        with self.readonly.reader() as conn:
            office_id = self.readonly.office_id(conn, scope.instance)
            ids = self.readonly.channel_ids(conn, office_id) if office_id is not None else {}
            if office_id is None or key not in ids:
                return self.page(request, "empty.html.j2", year=year, scope=scope)
            channel_id = ids[key]
            counts = data.month_counts(conn, channel_id, year)
            listing = data.publication_page(
                conn, channel_id, year, self.zone, counts=counts, month=month, repost=repost, page=page_number
            )
            runs = data.recent_runs(conn, office_id, self.zone, limit=20, channel_id=channel_id)
            years, _newest = self.years(conn, [channel_id], year)
        name = configured[key].name
        totals: dict[int, int] = {}
        reposts: dict[int, int] = {}
        for (in_month, is_repost), count in counts.items():
            totals[in_month] = totals.get(in_month, 0) + count
            if is_repost:
                reposts[in_month] = reposts.get(in_month, 0) + count

        def link(page: int) -> str:
            query: dict[str, Any] = {"year": year}
            if month is not None:
                query["month"] = month
            if kind:
                query["type"] = kind
            if page > 1:
                query["page"] = page
            return f"{scope.prefix}/channels/{quote(key)}?" + urlencode(query)

        return self.page(
            request,
            "channel.html.j2",
            year=year,
            years=years,
            key=key,
            name=name,
            kind_label=KIND_LABELS.get(configured[key].kind, configured[key].kind),
            total=sum(totals.values()),
            reposts=sum(reposts.values()),
            chart=monthly_chart(f"{name}{year}年每月发布数量", totals, reposts, width=1000, height=240, selected=month),
            month=month,
            type=kind,
            listing=listing,
            previous_link=link(listing.page - 1) if listing.page > 1 else None,
            next_link=link(listing.page + 1) if listing.page < listing.pages else None,
            runs=runs,
            status_labels=RUN_STATUS_LABELS,
            run_kinds=RUN_KIND_LABELS,
            scope=scope,
        )

    def runs(self, request: Request) -> Response:
        before = _int_param(request, "before", 1, 2**62, default=None)
        failures = request.query_params.get("failed") == "1"
        chosen = request.query_params.get("office") or None
        if chosen is not None and self.county:
            self.scope_of(request, chosen)  # 404 for an office the county does not have
        size = 100
        with self.readonly.reader() as conn:
            office_ids: int | list[int] | None
            if self.county:
                stored = self.readonly.county_offices(conn)
                office_ids = [stored[chosen]] if chosen in stored else [] if chosen else list(stored.values())
            else:
                office_ids = self.readonly.office_id(conn)
            if not office_ids:
                return self.page(request, "empty.html.j2")
            rows = data.recent_runs(conn, office_ids, self.zone, limit=size + 1, before=before, failures_only=failures)
        more = len(rows) > size
        rows = rows[:size]
        older = None
        filters = {**({"office": chosen} if chosen and self.county else {}), **({"failed": 1} if failures else {})}
        if more and rows:
            older = "/runs?" + urlencode({"before": rows[-1].id, **filters})
        return self.page(
            request,
            "runs.html.j2",
            runs=rows,
            failures=failures,
            older_link=older,
            status_labels=RUN_STATUS_LABELS,
            run_kinds=RUN_KIND_LABELS,
            chosen=chosen if self.county else None,
            offices=self._office_names(),
            filters=filters,
        )

    def _office_names(self) -> dict[str, str]:
        return {key: office.config.office.name for key, office in self.instance.offices.items()}

    def reports(self, request: Request) -> Response:
        year = self.year_of(request)
        with self.readonly.reader() as conn:
            if self.county:
                stored = self.readonly.county_offices(conn)
                office_channels = self.readonly.office_channels(conn, list(stored.values()))
                channel_ids = [cid for ids in office_channels.values() for cid in ids.values()]
            else:
                office_id = self.readonly.office_id(conn)
                channel_ids = list(self.readonly.channel_ids(conn, office_id).values()) if office_id is not None else []
            years, _newest = self.years(conn, channel_ids, year)
        today = data.office_today(self.zone)
        from channelwatch.reports.quarterly import previous_quarter

        last_year, last_quarter = previous_quarter(today.date())
        return self.page(
            request,
            "reports.html.j2",
            year=year,
            years=years,
            quarter_year=last_year,
            last_quarter=last_quarter,
            annual_year=today.year - 1 if year == today.year else year,
            offices=self._office_names(),
            chosen=request.query_params.get("office") or None,
        )

    # --- downloads ----------------------------------------------------------------------------------

    def _opened(self, conn: Any, scope: OfficeScope) -> Any:
        opened = self.readonly.as_store(conn, scope.instance)
        if opened is None:
            raise NotFound("统计库中还没有本单位的数据：请先导入或抓取")
        return opened

    def _download_scope(self, request: Request) -> OfficeScope:
        scope = (
            self.scope_of(request, request.query_params.get("office", "")) if self.county else self.scope_of(request)
        )
        if self.county and not scope.instance.config.channels:
            # As the CLI refuses it: a report of zeros (and a sentence naming no channel) would contradict the
            # figures the county holds from this office's sheets.
            raise NotFound(
                f"单位「{scope.instance.config.office.name}」只报送季度统计表，本库中没有它的发布记录，不生成它的报表；"
                "它报送的数字见全县汇总表"
            )
        return scope

    def summary_xlsx(self, request: Request) -> Response:
        from channelwatch.reports.summary import summary_sentence, write_summary_xlsx
        from channelwatch.stats.figures import Period, comparison_base, summarise

        scope = self._download_scope(request)
        year = _int_param(request, "year", 1990, 2100, default=None, required=True)
        keys = [c.id for c in scope.instance.config.channels]
        with self.readonly.reader() as conn:
            opened = self._opened(conn, scope)
            summary = summarise(conn, opened.office_id, Period(year), keys)
            previous = summarise(conn, opened.office_id, Period(year - 1), keys)
        sentence = summary_sentence(summary, self.instance.templates_dir, comparison_base(summary, previous))
        with tempfile.TemporaryDirectory(prefix="channelwatch-web-") as folder:
            target = Path(folder) / "summary.xlsx"
            write_summary_xlsx(summary, target, sentence)
            body = target.read_bytes()
        return _download(body, XLSX, f"{summary.office}{year}年信息发布统计.xlsx", f"summary-{year}.xlsx")

    def quarterly_xlsx(self, request: Request) -> Response:
        from channelwatch.reports.quarterly import build_quarterly

        year = _int_param(request, "year", 1990, 2100, default=None, required=True)
        quarter = _int_param(request, "quarter", 1, 4, default=None, required=True)
        scope = self._download_scope(request)
        keys = [c.id for c in scope.instance.config.channels]
        with self.readonly.reader() as conn:
            opened = self._opened(conn, scope)
            report = build_quarterly(
                conn,
                opened.office_id,
                year,
                quarter,
                channel_keys=keys,
                templates_dir=scope.instance.templates_dir,
                today=data.office_today(self.zone).date(),
            )
        return _download(report.xlsx_bytes(), XLSX, report.attachment_name, f"quarterly-{year}Q{quarter}.xlsx")

    def annual_docx(self, request: Request) -> Response:
        from channelwatch.reports.annual import build_annual_report, default_output_name
        from channelwatch.reports.docx_writer import write_docx

        year = _int_param(request, "year", 2019, 2100, default=None, required=True)
        scope = self._download_scope(request)
        with self.readonly.reader() as conn:
            opened = self._opened(conn, scope)
        # Failed checks do not stop the draft here: it comes with each problem marked ※, as
        # `report annual --force` writes it, so the clerk sees where to correct the inputs.
        report = build_annual_report(opened, year)
        with tempfile.TemporaryDirectory(prefix="channelwatch-web-") as folder:
            target = Path(folder) / "annual.docx"
            write_docx(report, target)
            body = target.read_bytes()
        return _download(body, DOCX, default_output_name(report, "docx"), f"annual-{year}.docx")

    def county_xlsx(self, request: Request) -> Response:
        """The county roll-up of a year or quarter, as ``county summary --format xlsx`` writes it."""
        from channelwatch.county.outputs import rollup_xlsx_bytes
        from channelwatch.county.rollup import build_rollup
        from channelwatch.stats.figures import Period

        if not self.county:
            raise NotFound("县级汇总表只在县级实例中提供")
        year = _int_param(request, "year", 1990, 2100, default=None, required=True)
        quarter = _int_param(request, "quarter", 1, 4, default=None)
        with self.readonly.reader() as conn:
            own = self._county_store(conn)
            stores = {key: self._office_store(conn, key) for key in self.instance.offices}
        rollup = build_rollup(self.instance, own, stores, Period(year, quarter))
        label = f"{year}Q{quarter}" if quarter else str(year)
        return _download(rollup_xlsx_bytes(rollup), XLSX, f"{rollup.title}表.xlsx", f"county-{label}.xlsx")

    # --- login --------------------------------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        if not self.gate.required:
            return RedirectResponse("/", status_code=303)
        return self.page(request, "login.html.j2", next=_safe_next(request.query_params.get("next")), error=None)

    async def login(self, request: Request) -> Response:
        if not self.gate.required:
            return RedirectResponse("/", status_code=303)
        form = await request.form()
        password = str(form.get("password", ""))
        target = _safe_next(str(form.get("next", "/")))
        client = request.client.host if request.client else "unknown"
        async with self.gate.throttle.lock_for(client):
            if not self.gate.check_password(password):
                await self.gate.throttle.punish(client)
                return self.page(request, "login.html.j2", status=401, next=target, error="密码不正确")
            self.gate.throttle.succeeded(client)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            self.gate.open_session(),
            max_age=self.gate.session_seconds,
            path="/",
            httponly=True,
            samesite="strict",
            secure=self.gate.secure_cookie or request.url.scheme == "https",
        )
        return response

    def logout(self, request: Request) -> Response:
        self.gate.close_session(request.cookies.get(COOKIE_NAME))
        response = RedirectResponse("/login" if self.gate.required else "/", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    def healthz(self, request: Request) -> Response:
        try:
            with self.readonly.reader() as conn:
                conn.exec_driver_sql("SELECT 1").scalar()
        except Exception:
            return PlainTextResponse("store unreachable", status_code=503)
        return PlainTextResponse("ok")


def _int_param(request: Request, name: str, low: int, high: int, *, default: int | None, required: bool = False) -> Any:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if required:
            raise BadRequest(f"缺少参数 {name}")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"参数 {name} 的值「{raw}」不是整数") from None
    if not low <= value <= high:
        raise BadRequest(f"参数 {name} 的值 {value} 超出范围（{low}–{high}）")
    return value


def _safe_next(target: str | None) -> str:
    """Only a path of this site: ``//host`` or ``http://…`` would send a fresh login elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _download(body: bytes, media_type: str, filename: str, fallback: str) -> Response:
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"
    return Response(body, media_type=media_type, headers={"content-disposition": disposition})


def create_app(instance: Instance, gate: Gate, readonly: data.ReadOnlyStore | None = None) -> ASGIApp:
    """The ASGI application serving ``instance``; the caller decides the gate (``auth.gate_for``)."""
    view = WebView(
        instance=instance,
        readonly=readonly or data.open_readonly(instance),
        gate=gate,
        env=template_environment(instance.templates_dir),
    )

    def guarded(endpoint: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        """User errors become a Chinese error page instead of a traceback; endpoints stay in the thread pool."""
        from starlette.concurrency import run_in_threadpool

        async def handle(request: Request) -> Response:
            try:
                return await run_in_threadpool(endpoint, request)
            except data.NoStore:
                return view.page(request, "empty.html.j2")
            except NotFound as exc:
                return view.page(request, "error.html.j2", status=404, message=str(exc))
            except UserError as exc:
                return view.page(request, "error.html.j2", status=400, message=str(exc))

        return handle

    if view.county:
        pages = [
            Route("/", guarded(view.county_overview)),
            Route("/offices/{office}", guarded(view.overview)),
            Route("/offices/{office}/channels/{key}", guarded(view.channel)),
            Route("/reports/county.xlsx", guarded(view.county_xlsx)),
        ]
    else:
        pages = [Route("/", guarded(view.overview)), Route("/channels/{key}", guarded(view.channel))]
    routes = [
        *pages,
        Route("/runs", guarded(view.runs)),
        Route("/reports", guarded(view.reports)),
        Route("/reports/summary.xlsx", guarded(view.summary_xlsx)),
        Route("/reports/quarterly.xlsx", guarded(view.quarterly_xlsx)),
        Route("/reports/annual.docx", guarded(view.annual_docx)),
        Route("/login", view.login_form, methods=["GET"]),
        Route("/login", view.login, methods=["POST"]),
        Route("/logout", view.logout, methods=["POST"]),
        Route("/healthz", view.healthz, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(packages=[("channelwatch.web", "static")]), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        view.readonly.dispose()

    async def not_found(request: Request, _exc: Exception) -> Response:
        return view.page(request, "error.html.j2", status=404, message=f"没有这个页面：{request.url.path}")

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found})
    app.state.view = view
    return Guard(app, gate)
