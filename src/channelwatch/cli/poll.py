"""The ``poll`` command: fetch what the configured channels published since the last poll."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from channelwatch.cli.common import app, echo, fail, store_of


@app.command("poll")
def poll_command(
    ctx: typer.Context,
    channels: Annotated[
        list[str] | None,
        typer.Argument(metavar="渠道", help="要抓取的渠道 id（默认：所有配置了 [channels.poll] 的渠道）"),
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="不在“整页都已抓过”时停止，一直翻到 max_pages 或列表末尾")
    ] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", help="同时发出的请求数上限", min=1, max=1000)] = 100,
) -> None:
    """立即抓取网站、微博、公众号的新发布（默认增量：遇到整页都已保存过即停止）。任一渠道失败时退出码为 1。"""
    from channelwatch.ingest.poll import poll_channels

    opened = store_of(ctx)
    with stop_on_signal() as stop:
        results = poll_channels(opened, channels or None, full=full, concurrency=concurrency, stop=stop)
    if not results:
        fail(
            f"没有可抓取的渠道：请在 {opened.instance.config_path} 中为渠道添加 [channels.poll]，"
            "或用 channelwatch import 导入导出文件"
        )
    failed = []
    interrupted = [r for r in results if r.status == "interrupted"]
    for result in results:
        if result.status == "ok":
            line = (
                f"{result.channel}：成功，抓取 {result.pages} 页，看到 {result.seen} 条，新增 {result.new} 条"
                f"（{result.seconds:.1f} 秒，运行记录 #{result.run_id}）"
            )
            echo(line)
            if result.message:
                echo(f"  注意：{result.message}")
        elif result.status == "interrupted":
            echo(f"{result.channel}：{interrupted_note(result.run_id)}", err=True)
        else:
            failed.append(result)
            echo(f"{result.channel}：失败（运行记录 #{result.run_id}）：{result.message}", err=True)
    if interrupted:
        fail(f"收到停止信号，{len(interrupted)} 个渠道的抓取已中断，未保存这些渠道的数据")
    if failed:
        names = "、".join(r.channel for r in failed)
        fail(f"{len(failed)} 个渠道抓取失败：{names}（原因见上方，也可用 channelwatch runs 查看）")


def interrupted_note(run_id: int) -> str:
    """How an interrupted channel reads: with its run, or (stopped before it began) without one."""
    return f"中断（运行记录 #{run_id}）" if run_id else "中断（尚未开始抓取）"


@contextmanager
def stop_on_signal() -> Iterator[threading.Event]:
    """SIGTERM or Ctrl+C cut the polls short and close their runs as interrupted (中断) instead of leaving
    them 进行中; a second signal ends the process at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
