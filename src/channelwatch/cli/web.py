"""``channelwatch serve``: the read-only web view on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from channelwatch.cli.common import app, echo, figures_store_of, instance_of


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

    instance = instance_of(ctx)
    gate = gate_for(instance, host)  # refuses a non-loopback host without a password, before binding
    # The pages show figures: the warnings a figure command owes its reader (a channel id the config
    # lost, a database without a single publication of the office) go to stderr once, at start.
    figures_store_of(ctx, check_empty=True)
    application = create_app(instance, gate)
    shown = f"[{host}]" if ":" in host else host
    access = "需要登录" if gate.required else "无需登录，仅本机可访问"
    echo(f"网页视图：http://{shown}:{port}/ （{access}；按 Ctrl+C 停止）")
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        server_header=False,
        proxy_headers=True,  # X-Forwarded-Proto from a proxy on this machine marks HTTPS (Secure cookie)
    )
