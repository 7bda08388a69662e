"""``channelwatch serve``: the read-only web view on uvicorn."""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from channelwatch.instance.config import Instance

from channelwatch.cli.common import _state, app, echo, fail, figures_store_of, instance_of, root_instance_of


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option("--host", help="监听地址；回环地址以外须在 [web] password_env 中设置登录密码"),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="监听端口", min=1, max=65535)] = 8080,
) -> None:
    """启动只读网页视图：各渠道数字、两周更新预警、发布列表、运行记录和报告下载。"""
    import uvicorn

    from channelwatch.web import create_app, gate_for

    root = root_instance_of(ctx)
    county = root.is_county and ctx.find_root().obj.office is None  # a county's pages, unless --office chose one
    instance = root if county else instance_of(ctx)
    gate = gate_for(instance, host)  # refuses a non-loopback host without a password, before binding
    if county:
        _county_warnings(root)
    else:
        # The pages show figures: the warnings a figure command owes its reader (a channel id the config
        # lost, a database without a single publication of the office) go to stderr once, at start.
        figures_store_of(ctx, check_empty=True)
    application = create_app(instance, gate)
    verbose = _state(ctx).verbose
    shown = f"[{host}]" if ":" in host else host
    _check_address(host, port, f"{shown}:{port}")
    access = "需要登录" if gate.required else "无需登录，仅本机可访问"
    echo(f"网页视图：http://{shown}:{port}/ （{access}；按 Ctrl+C 停止）")
    uvicorn.run(
        application,
        host=host,
        port=port,
        # The line above says in Chinese what uvicorn's English start and stop lines say; --verbose shows them
        # (and one line per request), warnings and errors always.
        log_level="info" if verbose else "warning",
        access_log=verbose,
        server_header=False,
        proxy_headers=True,  # X-Forwarded-Proto from a proxy on this machine marks HTTPS (Secure cookie)
    )


# Why an address cannot be listened on, as the IT person can act on it (uvicorn would say it in English).
_BIND_REASONS = {
    errno.EADDRINUSE: "端口已被其他程序占用：可用 --port 换一个端口，或先停止占用它的程序",
    errno.EACCES: "没有权限使用这个端口（1024 以下的端口需要管理员权限）：可用 --port 换一个 1024 以上的端口",
    errno.EADDRNOTAVAIL: "本机没有这个地址：--host 应是本机的一个地址，如 127.0.0.1 或 0.0.0.0",
}


def _check_address(host: str, port: int, shown: str) -> None:
    """Fail in one Chinese line when uvicorn could not listen on ``host:port``, before it tries.

    Bound as asyncio binds (every address the host resolves to, with SO_REUSEADDR), then released.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        fail(f"无法在 {shown} 启动网页视图：找不到监听地址「{host}」，--host 应是本机的一个地址，如 127.0.0.1")
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = _BIND_REASONS.get(exc.errno or 0, "无法监听这个地址")
                fail(f"无法在 {shown} 启动网页视图：{reason}（{exc.strerror or exc}）")


def _county_warnings(county: Instance) -> None:
    """A county's store opened as its commands open it (schema, offices, channels), and its orphan warnings."""
    from channelwatch import store
    from channelwatch.store.schema import orphan_notes

    own, stores = store.open_offices(county)
    try:
        with store.read(own.engine) as conn:
            for key, opened in stores.items():
                for channel, count, advice in orphan_notes(conn, opened.office_id, opened.instance):
                    echo(
                        f"警告：单位「{opened.instance.config.office.name}」（{key}）在数据库中渠道 id「{channel}」有 "
                        f"{count} 条发布记录，但配置中已没有这个渠道，这些记录不计入任何数字；{advice}",
                        err=True,
                    )
    finally:
        own.dispose()
