"""Delivering reports: a copy to the outbox folder (always), e-mail over SMTP, a JSON webhook.

Every delivery goes through the delivery log (``jobstate.Delivery``): one row per report, period
and target. A target that already has a ``sent`` row for that report and period is skipped unless
``resend`` is asked for; a ``pending``, ``failed`` or interrupted (``sending``) row is attempted again
at the next run. Each state change is its own committed transaction *before* the next step, so a
process killed at any moment never forgets that a quarter still has to go out.

Limit, stated honestly: a process killed after the SMTP server accepted a message but before the
``sent`` row was committed (a window of milliseconds) sends it again at the next run. The retry
carries the same ``Message-ID``, which mail systems use to recognise the duplicate.

The SMTP password is read from the environment variable ``password_env`` names, only when sending;
it never reaches a log line, an error message, the database or the outbox.
"""

from __future__ import annotations

import json
import logging
import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from channelwatch import store
from channelwatch.delivery.settings import DeliveryConfig, EmailConfig
from channelwatch.redaction import register_secret, secret, upstream
from channelwatch.store import Store
from channelwatch.store.jobstate import Delivery

__all__ = [
    "Attachment",
    "DeliveryOutcome",
    "Outgoing",
    "deliver",
    "real_targets",
    "report_label",
    "supersede",
    "target_label",
    "target_status_label",
    "undelivered",
    "undelivered_periods",
]

log = logging.getLogger(__name__)

XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@dataclass(frozen=True)
class Attachment:
    name: str
    content: bytes
    mime: tuple[str, str] = XLSX_TYPE


@dataclass
class Outgoing:
    """One report ready to deliver."""

    report: str  # quarterly | freshness
    period: str  # 2020Q4 | 2020-12-31
    subject: str
    text: str
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the figures, for the webhook


@dataclass
class TargetOutcome:
    target: str
    status: str  # sent | skipped | failed
    message: str | None = None


@dataclass
class DeliveryOutcome:
    report: str
    period: str
    targets: list[TargetOutcome] = field(default_factory=list)
    outbox_file: Path | None = None

    @property
    def failed(self) -> list[TargetOutcome]:
        return [t for t in self.targets if t.status == "failed"]

    def describe(self) -> str:
        """The outcome as the office reads it in ``jobs`` and ``run-job``."""
        parts = [
            f"{_TARGET_LABELS.get(t.target, t.target)}{target_status_label(t.target, t.status)}"
            + (f"（{t.message}）" if t.status == "failed" and t.message else "")
            for t in self.targets
        ]
        return f"{_REPORT_LABELS.get(self.report, self.report)} {self.period}：" + "，".join(parts)

    def lines(self) -> list[str]:
        """One line per target, as ``quarterly --send`` and ``county quarterly --send`` print them."""
        labels = {"sent": "已发送", "skipped": "跳过", "failed": "失败"}
        shown = []
        for t in self.targets:
            detail = f"：{t.message}" if t.message else ""
            # The outbox copy stays in the office: it is never called "sent" (see OUTBOX_LABELS).
            label = "已存副本（副本不算发送）" if t.target == "outbox" and t.status == "sent" else None
            shown.append(f"{target_label(t.target)}：{label or labels.get(t.status, t.status)}{detail}")
        return shown


_REPORT_LABELS = {
    "quarterly": "季度统计",
    "freshness": "更新预警",
    "quarterly-empty": "季度发布数为 0 的提醒",
    "inspection": "检查预警",
}
_TARGET_LABELS = {"outbox": "发件箱", "email": "邮件", "webhook": "webhook "}
_STATUS_LABELS = {"sent": "已发送", "skipped": "已发送过，跳过", "failed": "发送失败"}
# The outbox copy is a record kept by the office, not a delivery: it is never called "sent".
OUTBOX_LABELS = {"sent": "已存副本（未发出）", "skipped": "已存过副本，跳过", "failed": "存副本失败"}


def target_label(target: str) -> str:
    """发件箱, 邮件, webhook: what a clerk reads instead of the delivery log's target ids."""
    return _TARGET_LABELS.get(target, target).strip()


def report_label(report: str) -> str:
    return _REPORT_LABELS.get(report, report)


def target_status_label(target: str, status: str) -> str:
    return (OUTBOX_LABELS if target == "outbox" else _STATUS_LABELS).get(status, status)


def _settings(opened: Store) -> DeliveryConfig:
    return opened.instance.config.delivery


def real_targets(settings: DeliveryConfig, report: str = "quarterly") -> list[str]:
    """The targets that actually leave the office (the outbox copy does not)."""
    return [t for t in targets_of(settings, report) if t != "outbox"]


def targets_of(settings: DeliveryConfig, report: str = "quarterly") -> list[str]:
    """Where a report goes: always the outbox; e-mail when it has recipients for this report; the
    webhook for the quarterly statistics only (it is the county office's system, not the office's)."""
    found = ["outbox"]
    if settings.email is not None and settings.email.recipients(report):
        found.append("email")
    if settings.webhook and report == "quarterly":
        found.append("webhook")
    return found


def _table() -> Any:
    return Delivery.__table__  # type: ignore[attr-defined]


def _claim(
    opened: Store, outgoing: Outgoing, targets: list[str], *, resend: bool, job_id: str | None
) -> dict[str, int]:
    """The delivery rows to attempt now, created ``pending`` in one transaction; sent targets are left out."""
    table = _table()
    claimed: dict[str, int] = {}
    with store.write(opened.engine) as conn:
        for target in targets:
            rows = list(
                conn.execute(
                    select(table.c.id, table.c.status)
                    .where(
                        table.c.office_id == opened.office_id,
                        table.c.report == outgoing.report,
                        table.c.period == outgoing.period,
                        table.c.target == target,
                    )
                    .order_by(table.c.id)
                )
            )
            open_rows = [r.id for r in rows if r.status not in ("sent", "superseded")]
            if open_rows:
                claimed[target] = open_rows[-1]
                continue
            if rows and not resend:
                continue
            inserted = conn.execute(
                table.insert().values(
                    office_id=opened.office_id,
                    report=outgoing.report,
                    period=outgoing.period,
                    target=target,
                    status="pending",
                    created_at=store.utc_now(),
                    job_id=job_id,
                )
            ).inserted_primary_key
            assert inserted is not None
            claimed[target] = int(inserted[0])
    return claimed


def _mark(opened: Store, row_id: int, status: str, message: str | None = None, **values: Any) -> None:
    table = _table()
    now = store.utc_now()
    changes: dict[str, Any] = {"status": status, "message": message, **values}
    if status == "sending":
        changes["last_attempt_at"] = now
        changes["attempts"] = table.c.attempts + 1
    if status == "sent":
        changes["sent_at"] = now
    with store.write(opened.engine) as conn:
        conn.execute(table.update().where(table.c.id == row_id).values(**changes))


def _message_id(opened: Store, row_id: int, outgoing: Outgoing) -> str:
    table = _table()
    with store.read(opened.engine) as conn:
        found = conn.execute(select(table.c.message_id).where(table.c.id == row_id)).scalar()
    if found:
        return str(found)
    # Fixed at the first attempt and reused by every retry, so a duplicate can be recognised.
    value = make_msgid(idstring=f"channelwatch.{outgoing.report}.{outgoing.period}.{row_id}", domain=_domain(opened))
    with store.write(opened.engine) as conn:
        conn.execute(table.update().where(table.c.id == row_id).values(message_id=value))
    return value


def _domain(opened: Store) -> str:
    email = _settings(opened).email
    if email is not None and "@" in email.sender:
        return email.sender.rsplit("@", 1)[1]
    return socket.getfqdn() or "localhost"


def build_message(
    outgoing: Outgoing, email: EmailConfig | None, message_id: str, now: datetime, *, sender_name: str
) -> EmailMessage:
    """``sender_name`` is the office's name: recipients see who reports, not the program that sends."""
    message = EmailMessage()
    message["Subject"] = outgoing.subject
    if email is not None:
        message["From"] = formataddr((sender_name, email.sender))
        message["To"] = ", ".join(email.recipients(outgoing.report))
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    message.set_content(outgoing.text)
    if outgoing.html:
        message.add_alternative(outgoing.html, subtype="html")
    for attachment in outgoing.attachments:
        maintype, subtype = attachment.mime
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.name)
    return message


def _safe_name(text: str) -> str:
    return re.sub(r'[\\/:*?"<>|\s]+', "_", text).strip("_")[:120]


def _atomic_write(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def write_outbox(folder: Path, outgoing: Outgoing, message: EmailMessage, now: datetime) -> Path:
    """A copy of what is sent: the complete e-mail (.eml) plus each attachment beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{now.strftime('%Y%m%d-%H%M%S')}-{outgoing.report}-{_safe_name(outgoing.period)}"
    eml = folder / f"{stem}.eml"
    number = 1
    while eml.exists():
        number += 1
        eml = folder / f"{stem}-{number}.eml"
    _atomic_write(eml, bytes(message))
    for attachment in outgoing.attachments:
        _atomic_write(folder / f"{eml.stem}-{_safe_name(attachment.name)}", attachment.content)
    return eml


def send_email(settings: EmailConfig, message: EmailMessage, *, where: str, to: list[str] | None = None) -> None:
    password = None
    if settings.username:
        password = secret(settings.password_env, what="SMTP 密码", where=where)
        register_secret(password, username=settings.username)  # also as AUTH PLAIN/LOGIN send it
    port = settings.effective_port
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if settings.security == "ssl":
        client = smtplib.SMTP_SSL(settings.host, port, timeout=settings.timeout, context=context)
    else:
        client = smtplib.SMTP(settings.host, port, timeout=settings.timeout)
    try:
        client.ehlo()
        if settings.security == "starttls":
            client.starttls(context=context)
            client.ehlo()
        if settings.username and password is not None:
            client.login(settings.username, password)
        refused = client.send_message(
            message, from_addr=settings.sender, to_addrs=list(to if to is not None else settings.to)
        )
        if refused:
            # smtplib returns the recipients the relay refused when it accepted at least one: the report did
            # not reach everyone it is for, so it is not "sent" (the retry sends it to every recipient again).
            raise smtplib.SMTPRecipientsRefused(refused)
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()


def _register_webhook_secrets(url: str) -> None:
    """A webhook's URL is its credential (DingTalk's ``access_token=…``, a Feishu or Slack hook path):
    its query values and long path segments are masked wherever the webhook's answer quotes them."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    for _name, value in parse_qsl(parts.query, keep_blank_values=False):
        if len(value) >= 8:
            register_secret(value)
    for segment in parts.path.split("/"):
        if len(segment) >= 20:
            register_secret(segment)


def post_webhook(url: str, outgoing: Outgoing, message_id: str, timeout: float = 30.0) -> None:
    import base64

    import httpx

    _register_webhook_secrets(url)
    payload = {
        "report": outgoing.report,
        "period": outgoing.period,
        "subject": outgoing.subject,
        "text": outgoing.text,
        "data": outgoing.data,
        "delivery_id": message_id,
        "attachments": [
            {"name": a.name, "content_base64": base64.b64encode(a.content).decode("ascii")}
            for a in outgoing.attachments
        ],
    }
    response = httpx.post(
        url,
        content=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message_id},
        timeout=timeout,
    )
    if not 200 <= response.status_code < 300:
        # A redirect (to a login page, a moved address) is not the receiver taking the report: it is not followed.
        where = response.headers.get("Location", "")
        answer = f"转到 {where}" if 300 <= response.status_code < 400 and where else response.text[:300]
        raise WebhookError(f"HTTP {response.status_code}" + (f"：{answer}" if answer.strip() else ""))
    refusal = _refusal_in(response)
    if refusal is not None:
        raise WebhookError(f"HTTP {response.status_code}，但{refusal}")


def _refusal_in(response: Any) -> str | None:
    """The refusal an HTTP 200 answer carries in its JSON: DingTalk's and WeCom's robots answer every request
    with 200 and say ``{"errcode": 310000, "errmsg": "keywords not in content"}``; Feishu's says
    ``{"code": 19024, "msg": "…"}``; others ``{"ok": false}`` or ``{"success": false}``. Other answers (none, text,
    JSON without these) are taken as accepted."""
    try:
        data = response.json()
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for flag in ("ok", "success"):  # Slack's {"ok": false, "error": …}, and the many {"success": false, …}
        if data.get(flag) is False:
            words = data.get("error") or data.get("message") or data.get("msg") or ""
            return f"对方回答 {flag}=false" + (f"：{str(words)[:300]}" if words else "")
    code, words = data.get("errcode"), data.get("errmsg")
    if code is None and "msg" in data:  # Feishu; a receiver's {"code": 200, "msg": "ok"} is no refusal
        code, words = data.get("code"), data.get("msg")
        if code == 200:
            return None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return f"对方回答错误码 {code}" + (f"：{str(words)[:300]}" if words else "")
    if isinstance(code, str) and code.strip().lstrip("-").isdigit() and int(code) not in (0, 200):
        return f"对方回答错误码 {code.strip()}" + (f"：{str(words)[:300]}" if words else "")
    return None


class WebhookError(RuntimeError):
    """The webhook answered with an error status (its answer is upstream text: redacted before use)."""


def _describe_error(exc: BaseException) -> str:
    """A short reason for the log and the database. What the relay or webhook answered is upstream
    text: a hostile or careless server may quote our credentials back, so it is redacted of every
    configured secret (also in the Base64 forms SMTP AUTH sends) and put on one line."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"SMTP 登录失败（{exc.smtp_code}）：请检查 username 和 password_env 指定的环境变量"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = "；".join(
            f"{address}（{code} {answer.decode('utf-8', 'replace') if isinstance(answer, bytes) else answer}）"
            for address, (code, answer) in exc.recipients.items()
        )
        return upstream(f"邮件服务器拒收了收件人 {refused}，本次计为未发送，重试时会再发给全部收件人")
    if isinstance(exc, smtplib.SMTPResponseException):
        answer = exc.smtp_error
        text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
        return upstream(f"SMTP 错误 {exc.smtp_code}：{text}")
    if isinstance(exc, WebhookError):
        return upstream(f"webhook 返回 {exc}")
    return upstream(f"{type(exc).__name__}: {exc}")


def deliver(opened: Store, outgoing: Outgoing, *, resend: bool = False, job_id: str | None = None) -> DeliveryOutcome:
    """Deliver ``outgoing`` to the outbox and every configured target not yet served (see module doc)."""
    settings = _settings(opened)
    outcome = DeliveryOutcome(report=outgoing.report, period=outgoing.period)
    targets = targets_of(settings, outgoing.report)
    claimed = _claim(opened, outgoing, targets, resend=resend, job_id=job_id)
    for target in targets:
        if target not in claimed:
            # The outbox copy is no sending (its own line says so): it is "kept already", not "sent already".
            done = "已存过副本" if target == "outbox" else "已发送过（如需再次发送请加 --resend）"
            outcome.targets.append(TargetOutcome(target, "skipped", done))
    if not claimed:
        return outcome
    # Outbox names and the Date header in office time: what the office's staff read.
    now = datetime.now(ZoneInfo(opened.instance.timezone))
    # One Message-ID per delivery, taken from the e-mail row when there is one, so the outbox copy
    # and the sent message are the same message.
    key_row = next(claimed[t] for t in ("email", "webhook", "outbox") if t in claimed)
    message_id = _message_id(opened, key_row, outgoing)
    message = build_message(outgoing, settings.email, message_id, now, sender_name=opened.instance.config.office.name)
    where = f"配置文件 {opened.instance.config_path} 的 [delivery.email]"

    if "outbox" in claimed:
        # Once per report and period (again with --resend): a retry of a failed e-mail is the same message,
        # and a second copy beside the first would contradict the outbox line's "已发送过".
        outcome.outbox_file = write_outbox(opened.instance.path(settings.outbox), outgoing, message, now)
        _mark(opened, claimed["outbox"], "sending")
        _mark(opened, claimed["outbox"], "sent", str(outcome.outbox_file))
        outcome.targets.append(TargetOutcome("outbox", "sent", str(outcome.outbox_file)))

    for target in ("email", "webhook"):
        if target not in claimed:
            continue
        row_id = claimed[target]
        _mark(opened, row_id, "sending")
        try:
            if target == "email":
                assert settings.email is not None
                send_email(settings.email, message, where=where, to=settings.email.recipients(outgoing.report))
            else:
                assert settings.webhook is not None
                post_webhook(settings.webhook, outgoing, message_id)
        except Exception as exc:
            reason = (
                upstream(str(exc))
                if exc.__class__.__name__ == "ConfigError"
                else upstream(_in_chinese(exc, _describe_error(exc), target))
            )
            _mark(opened, row_id, "failed", reason)
            outcome.targets.append(TargetOutcome(target, "failed", reason))
            log.warning("delivery of %s %s to %s failed: %s", outgoing.report, outgoing.period, target, reason)
            continue
        _mark(opened, row_id, "sent", None)
        outcome.targets.append(TargetOutcome(target, "sent"))
    return outcome


def undelivered(opened: Store, report: str | None = None) -> list[Any]:
    """Delivery rows not (yet) sent: pending, failed, or interrupted while sending."""
    table = _table()
    query = select(table).where(table.c.office_id == opened.office_id, table.c.status.not_in(["sent", "superseded"]))
    if report is not None:
        query = query.where(table.c.report == report)
    with store.read(opened.engine) as conn:
        return list(conn.execute(query.order_by(table.c.id)))


def supersede(opened: Store, report: str, current_period: str) -> int:
    """Unsent rows of ``report`` for other periods become ``superseded``: a newer report replaces them.

    Used for freshness warnings: yesterday's warning that could not be sent is not worth sending
    today beside today's, and must not stay listed as pending forever.
    """
    table = _table()
    with store.write(opened.engine) as conn:
        result = conn.execute(
            table.update()
            .where(
                table.c.office_id == opened.office_id,
                table.c.report == report,
                table.c.period != current_period,
                table.c.status != "sent",
                table.c.status != "superseded",
            )
            .values(status="superseded")
        )
        return int(result.rowcount or 0)


def undelivered_periods(opened: Store, report: str) -> list[str]:
    return sorted({row.period for row in undelivered(opened, report)})


def delivery_log(opened: Store, limit: int = 20) -> list[Any]:
    table = _table()
    with store.read(opened.engine) as conn:
        return list(
            conn.execute(
                select(table).where(table.c.office_id == opened.office_id).order_by(table.c.id.desc()).limit(limit)
            )
        )


_HAN = re.compile(r"[\u4e00-\u9fff]")


def _in_chinese(exc: BaseException, described: str, target: str) -> str:
    """The reason a clerk reads in ``jobs`` and on the terminal: Chinese first, the library's words in brackets."""
    if _HAN.search(described):
        return described
    peer = "邮件服务器" if target == "email" else "webhook 地址"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        what = "邮件服务器断开了连接"
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        what = "邮件服务器拒收全部收件人"
    elif isinstance(exc, smtplib.SMTPNotSupportedError):
        what = "邮件服务器不支持所需的功能（如 STARTTLS 加密或登录），请检查 security 设置"
    elif isinstance(exc, smtplib.SMTPException):
        what = "邮件服务器拒绝发送"
    elif isinstance(exc, ssl.SSLError):
        what = f"与{peer}的加密连接（TLS）失败"
    elif isinstance(exc, socket.gaierror):
        what = f"找不到{peer}的主机名"
    elif isinstance(exc, ConnectionRefusedError):
        what = f"无法连接{peer}：对方拒绝连接"
    elif isinstance(exc, TimeoutError):
        what = f"连接{peer}超时"
    elif target == "webhook" and str(exc).startswith("HTTP "):
        what = "webhook 返回错误状态"
    elif type(exc).__module__.startswith("httpx"):
        name = type(exc).__name__
        what = (
            "webhook 请求超时"
            if "Timeout" in name
            else "无法连接 webhook 地址"
            if "Connect" in name
            else "webhook 请求失败"
        )
    elif isinstance(exc, OSError):
        what = f"与{peer}通信时出现网络错误"
    else:
        what = "邮件发送失败" if target == "email" else "webhook 发送失败"
    return f"{what}（{described}）"
