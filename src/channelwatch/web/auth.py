"""Who may see the web view: the loopback rule, the shared password, sessions and slowed-down failures.

- Bound to a loopback address (127.0.0.0/8, ::1, ``localhost``) the view may run without a password:
  only people logged in on the server itself can reach it.
- Bound to any other address it refuses to start unless ``[web] password_env`` names an environment
  variable holding the password. When a password is configured it is required on loopback too.
- A login opens a session: a random token in a cookie (``HttpOnly``, ``SameSite=Strict``, ``Secure``
  when the request came over HTTPS or ``[web] secure_cookie`` is set), kept in this process's memory,
  so logging out or restarting the view ends it for good.
- Each failed login from an address waits longer than the one before (1 s, 2 s, 4 s … up to 30 s),
  which makes guessing the password over the network impractically slow.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field

from channelwatch.errors import ConfigError
from channelwatch.instance.config import Instance
from channelwatch.redaction import secret

__all__ = ["COOKIE_NAME", "Gate", "Throttle", "gate_for", "is_loopback"]

COOKIE_NAME = "channelwatch_session"
MIN_PASSWORD_LENGTH = 8


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it is treated as reachable from outside


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass
class Throttle:
    """Failed logins per client address; the n-th failure in a row waits ``base · 2ⁿ⁻¹`` seconds."""

    base: float = 1.0
    ceiling: float = 30.0
    forget_after: float = 15 * 60.0
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _attempts: dict[str, asyncio.Lock] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def delay_after_failure(self, client: str) -> float:
        now = time.monotonic()
        with self._lock:
            count, last = self._failures.get(client, (0, now))
            if now - last > self.forget_after:
                count = 0
            count += 1
            self._failures[client] = (count, now)
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                oldest = sorted(self._failures.items(), key=lambda item: item[1][1])[:5_000]
                for key, _ in oldest:
                    self._failures.pop(key, None)
        return min(self.ceiling, self.base * 2 ** (count - 1))

    def lock_for(self, client: str) -> asyncio.Lock:
        """One login attempt at a time per address: parallel guesses would otherwise share one delay."""
        with self._lock:
            lock = self._attempts.get(client)
            if lock is None:
                if len(self._attempts) > 10_000:
                    for key in [k for k, held in self._attempts.items() if not held.locked()]:
                        del self._attempts[key]
                lock = self._attempts[client] = asyncio.Lock()
            return lock

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    async def punish(self, client: str) -> None:
        await asyncio.sleep(self.delay_after_failure(client))


@dataclass
class Gate:
    """The password (as a digest: the text itself is not kept) and the open sessions."""

    password_digest: bytes | None
    session_seconds: int
    secure_cookie: bool = False
    throttle: Throttle = field(default_factory=Throttle)
    _sessions: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def required(self) -> bool:
        return self.password_digest is not None

    def check_password(self, given: str) -> bool:
        if self.password_digest is None:
            return False
        return hmac.compare_digest(_digest(given), self.password_digest)

    def open_session(self) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            for stale in [t for t, expires in self._sessions.items() if expires < now]:
                del self._sessions[stale]
            self._sessions[token] = now + self.session_seconds
        return token

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self._lock:
            expires = self._sessions.get(token)
            if expires is None:
                return False
            if expires < time.monotonic():
                del self._sessions[token]
                return False
            return True

    def close_session(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)


def gate_for(instance: Instance, host: str) -> Gate:
    """The gate for serving ``instance`` on ``host``; a non-loopback host without a password is refused."""
    settings = instance.config.web
    if settings.password_env is None:
        if not is_loopback(host):
            raise ConfigError(
                f"拒绝在 {host} 上启动网页视图：只有回环地址（127.0.0.1、::1、localhost）可以不设密码。"
                f'请在 {instance.config_path} 的 [web] 中设置 password_env = "环境变量名"，'
                "并在该环境变量中存放登录密码；或改用 --host 127.0.0.1"
            )
        return Gate(password_digest=None, session_seconds=settings.session_hours * 3600)
    password = secret(settings.password_env, what="网页视图登录密码", where=f"{instance.config_path} [web]")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"环境变量 {settings.password_env} 中的网页视图登录密码太短：至少需要 {MIN_PASSWORD_LENGTH} 个字符"
        )
    return Gate(
        password_digest=_digest(password),
        session_seconds=settings.session_hours * 3600,
        secure_cookie=settings.secure_cookie,
    )
