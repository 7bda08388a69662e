"""Which hosts a poll may reach: the hosts its configuration names, plus ``allow_hosts``.

A server a channel polls is not trusted: a redirect (or a link on a list page) may point at another
host, at the cloud metadata service (``169.254.169.254``), at the daemon's own machine or at a
``file:`` URL. ``refusal()`` decides, from the URL alone and without any network access, whether a
poll may go there; the HTTP layer asks it before following every redirect and before every request a
source makes, so the answer is the same for every source.

Rules, in order (the first that matches decides):

1. only ``http`` and ``https``;
2. never a link-local address (``169.254.0.0/16``, ``fe80::/10``: cloud metadata services live there),
   not even when listed in ``allow_hosts``;
3. a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``, ``0.0.0.0``) only when the channel's
   own URL is loopback (a test, or a proxy on the same machine);
4. the host must be one the configuration names (``url``, ``base_url``, …) or one of ``allow_hosts``.

IPv4 addresses are read the way the C library reads them when connecting (``2130706433``,
``0x7f.1`` and ``127.1`` are all ``127.0.0.1``), so a spelling trick does not pass rule 2 or 3.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["HostPolicy", "address_of", "host_of", "refusal"]

_NUMERIC_V4 = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_LINK_LOCAL_V4 = ipaddress.ip_network("169.254.0.0/16")


def host_of(url: str) -> str:
    """The URL's host, lower case, without brackets, port or trailing dot ("" when it has none)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    host = host.rstrip(".").lower()
    if not host.isascii():
        with contextlib.suppress(UnicodeError):  # 政府.cn → xn--…: the form httpx connects to
            host = host.encode("idna").decode("ascii")
    return host


def address_of(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host name spells, or None for a name that needs DNS."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_V4.match(host) or not any(c.isdigit() for c in host):
            return None
        try:
            # inet_aton accepts what connect() accepts: 2130706433, 0x7f.1, 127.1, 0177.0.0.1
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# Asked before every request and redirect: each host's answer is kept (a few hundred hosts per poll).
@functools.lru_cache(maxsize=4096)
def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = address_of(host)
    return address is not None and (address.is_loopback or address.is_unspecified)


@functools.lru_cache(maxsize=4096)
def _is_link_local(host: str) -> bool:
    address = address_of(host)
    if address is None:
        return False
    return address.is_link_local or (isinstance(address, ipaddress.IPv4Address) and address in _LINK_LOCAL_V4)


@dataclass(frozen=True)
class HostPolicy:
    """The hosts one channel may reach."""

    hosts: frozenset[str]
    loopback: bool  # the channel's own URL is a loopback address

    @classmethod
    def of(cls, urls: Iterable[str], allow_hosts: Iterable[str] = ()) -> HostPolicy:
        """The policy of a channel whose configuration names ``urls``, with ``allow_hosts`` added."""
        given = {h for h in (host_of(u) for u in urls) if h}
        extra = {host_of(f"http://{h.strip()}/") for h in allow_hosts if h.strip()} - {""}
        return cls(frozenset(given | extra), any(_is_loopback(h) for h in given))


def refusal(url: str, policy: HostPolicy) -> str | None:
    """None when a poll under ``policy`` may fetch ``url``; else why not, in Chinese."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return "地址无法解析"
    if scheme not in ("http", "https"):
        return f"不是 HTTP 地址（{scheme or '没有协议'}:）"
    host = host_of(url)
    if not host:
        return "地址没有主机名"
    if _is_link_local(host):
        return f"{host} 是链路本地地址（169.254.0.0/16，云服务器的元数据服务在此），一律不访问"
    if _is_loopback(host) and not policy.loopback:
        return f"{host} 是本机回环地址，而渠道的地址不是"
    if host not in policy.hosts:
        return f"{host} 不是渠道配置的主机，也不在 allow_hosts 中"
    return None
