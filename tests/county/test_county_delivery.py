"""The county's quarterly roll-up to the county's own recipients, over a real SMTP server on loopback.

Same guarantees as an office's quarterly statistics: a failed send is retried by the next run (here the
``county-quarterly`` job), a sent quarter is not sent twice, the attachment holds the roll-up's figures.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from openpyxl import load_workbook

from tests.conftest import _free_port
from tests.county.test_county import ROWS, run, write_county, write_csv
from tests.delivery.test_send import start_smtp, xlsx_of


def _county_that_mails(tmp_path: Path, database_url: str, port: int) -> Path:
    """The test county, mailing its roll-up to a loopback SMTP port, with the county-quarterly job."""
    root = write_county(tmp_path / "county", database_url)
    config = root / "config" / "channelwatch.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        + f'  [delivery.email]\n  host = "127.0.0.1"\n  port = {port}\n  security = "none"\n'
        + '  from = "gongkaiban@example.gov.cn"\n  to = ["xianzhang@example.gov.cn"]\n  timeout = 10\n',
        encoding="utf-8",
    )
    (root / "jobs").mkdir()
    (root / "jobs" / "county.toml").write_text('action = "county-quarterly"\ncron = "0 9 10 1,4,7,10 *"\n')
    return root


def test_county_quarterly_failed_then_retried_by_the_job_then_never_twice(tmp_path: Path, database_url: str) -> None:
    port = _free_port()  # nothing listens here yet
    root = _county_that_mails(tmp_path, database_url, port)
    tree = tmp_path / "tree"
    for (office, channel), rows in ROWS.items():
        write_csv(tree / office / channel / f"{channel}.csv", rows)
    assert run(root, "import-tree", str(tree))[0] == 0

    code, out = run(root, "county", "quarterly", "-y", "2020", "-q", "4", "--send")
    assert code == 1, out
    assert "邮件：失败" in out and "发件箱：已存副本（副本不算发送）" in out

    controller, server = start_smtp(port)
    try:
        code, out = run(root, "run-job", "county")
        assert code == 0, out
        assert "[全县]：成功" in out
    finally:
        controller.stop()
    subjects = [m["Subject"] for m in server.messages]
    assert "测试县2020年第四季度各单位信息发布情况汇总" in subjects  # the failed quarter, retried
    message = next(m for m in server.messages if m["Subject"] == "测试县2020年第四季度各单位信息发布情况汇总")
    assert message["To"] == "xianzhang@example.gov.cn"
    _name, content = xlsx_of(message)
    cells = {r[0]: r for r in load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True) if r[0]}  # type: ignore[union-attr]
    code, out = run(root, "county", "summary", "-y", "2020", "-q", "4", "-f", "json")
    rollup = json.loads(out)
    for office in rollup["offices"]:
        assert cells[office["name"]][5] == office["total"]
    assert cells["全县合计"][5] == rollup["total"]

    code, out = run(root, "county", "quarterly", "-y", "2020", "-q", "4", "--send")
    assert code == 0 and "邮件：跳过" in out
    code, out = run(root, "county", "quarterly", "-y", "2020", "-q", "4", "--resend")
    assert code == 1 and "邮件：失败" in out  # forced again, and the server is gone now


def test_the_county_job_warns_of_an_office_whose_zero_is_no_count(tmp_path: Path, database_url: str) -> None:
    """A town nothing was imported from shows 0 in the county's table: sent, but the job says whose 0 counts
    nothing (无数据), instead of calling the run a plain success."""
    port = _free_port()
    root = _county_that_mails(tmp_path, database_url, port)
    tree = tmp_path / "tree"
    for (office, channel), rows in ROWS.items():
        if office != "baiyang":  # the town's exports never came
            write_csv(tree / office / channel / f"{channel}.csv", rows)
    assert run(root, "import-tree", str(tree))[0] == 0
    code, out = run(root, "county", "summary", "-y", "2020", "-q", "4")
    assert "无数据：各渠道在本期结束前都没有发布记录，0 不是统计结果" in out
    controller, server = start_smtp(port)
    try:
        code, out = run(root, "run-job", "county")
    finally:
        controller.stop()
    assert code == 0 and "[全县]：警告" in out, out
    assert "邮件已发送" in out and "注意：测试县白杨镇人民政府：各渠道在本期结束前都没有发布记录，0 不是统计结果" in out
    assert len(server.messages) == 1
