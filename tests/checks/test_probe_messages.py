"""A homepage probe that cannot connect says why in Chinese, the system's own words in brackets."""

from __future__ import annotations

import asyncio
import socket

from channelwatch.checks.probe import _probe_one


def test_a_refused_homepage_reads_in_chinese() -> None:
    with socket.socket() as placeholder:  # a port nothing listens on: bound, never listening
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        outcome = asyncio.run(_probe_one("site", f"http://127.0.0.1:{port}/", 2.0))
    assert not outcome.ok
    assert (outcome.error or "").startswith("无法连接：对方拒绝连接，该地址上没有网站服务在运行（[Errno 111] ")


def test_a_name_with_several_addresses_reads_the_attempts_own_error() -> None:
    import httpx

    from channelwatch.checks.probe import _problem

    attempts = [ConnectionRefusedError(111, "Connect call failed"), OSError(101, "Network is unreachable")]
    try:
        try:
            raise OSError("All connection attempts failed") from ExceptionGroup("attempts", attempts)
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        assert _problem(exc) == "对方拒绝连接，该地址上没有网站服务在运行（[Errno 111] Connect call failed）"
