"""What the annual report needs and the store does not know: ``config/annual/<year>.toml``.

The store knows the channel figures of 一、总体情况. Everything else — the 第二十条 figures of
section 二, the request matrix of section 三, the appeal figures of section 四 and the office's own
text — is typed in by staff once a year. ``channelwatch report annual --year Y --init-inputs`` writes
this file for the year's format with every field present, zeroed and commented in Chinese, so that
nobody has to know the keys.

Layout (keys are ASCII so that they survive any editor; the Chinese label is the comment beside it)::

    format = "国办公开办函〔2019〕60号"      # informational; must match the year's format

    [text]
    overview_intro = "…"                       # 一、总体情况 before the channel sentence
    overview = "…"                             # 一、总体情况 after it
    problems = "…"                             # 五、存在的主要问题及改进情况
    other_matters = "…"                        # 六、其他需要报告的事项

    [section2.item1]                           # 第二十条第（一）项
    rules = [0, 0, 0]                          # 规章: one value per column

    [section3]                                 # 7 values: 自然人, 5 kinds of 法人或其他组织, 总计
    received = [0, 0, 0, 0, 0, 0, 0]

    [section4]                                 # 5 values: 结果维持 … 总计
    review = [0, 0, 0, 0, 0]

Derived figures may be left out and are then computed: the 总计 column of section 三 (give six
values), the （七）总计 row, and the 总计 of section 四 (give four values). Everything else that is
missing is shown as 0 and listed in a warning. Wrong *values* (negative, fractional) are not load
errors: the checks report them with their row and column, and ``--force`` can still write the draft.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from channelwatch.errors import ConfigError
from channelwatch.instance.config import load_toml
from channelwatch.reports.annual_formats import (
    APPEAL_ROWS,
    RESULTS_TOTAL,
    AnnualFormat,
    format_for_year,
)

__all__ = [
    "TEXT_FIELDS",
    "AnnualInputs",
    "Number",
    "dump_inputs",
    "inputs_path",
    "load_inputs",
    "write_initial_inputs",
    "zero_inputs",
]

Number = int | float

# Text fields: key → (where it goes, what to write there).
TEXT_FIELDS: dict[str, tuple[str, str]] = {
    "overview_intro": ("一、总体情况（渠道发布情况之前）", "开篇概述，如本年度政府信息公开工作的总体安排"),
    "overview": (
        "一、总体情况（渠道发布情况之后）",
        "主动公开、依申请公开、政府信息管理、平台建设、监督保障等情况，每行一段",
    ),
    "problems": ("五、存在的主要问题及改进情况", "存在的问题和改进措施，每行一段"),
    "other_matters": (
        "六、其他需要报告的事项",
        "如信息处理费收取情况（例：本年度未收取信息处理费。），没有可写“无。”",
    ),
}


def inputs_path(root: Path, year: int) -> Path:
    return root / "config" / "annual" / f"{year}.toml"


@dataclass
class AnnualInputs:
    """The filled-in figures and text of one year's report, in the shape of that year's format."""

    year: int
    format: AnnualFormat
    texts: dict[str, str]
    section2: dict[str, dict[str, list[Number]]]  # block key → row key → one value per column
    section3: dict[str, list[Number]]  # figure row key → 7 values (6 applicant columns + 总计)
    section4: dict[str, list[Number]]  # APPEAL_ROWS key → 5 values (… + 总计)
    missing: list[str] = field(default_factory=list)  # what the file did not give, as Chinese labels
    path: Path | None = None

    def received_total(self) -> Number:
        return self.section3["received"][-1]


def zero_inputs(year: int) -> AnnualInputs:
    fmt = format_for_year(year)
    width = len(fmt.request_columns)
    return AnnualInputs(
        year=year,
        format=fmt,
        texts={key: "" for key in TEXT_FIELDS},
        section2={b.key: {line.key: [0] * len(b.columns) for line in b.rows} for b in fmt.section2},
        section3={leaf.key: [0] * width for _p, leaf in fmt.request_leaves() if leaf.key is not None},
        section4={key: [0] * len(fmt.appeal_columns) for key, _labels in APPEAL_ROWS},
    )


# --- loading ---------------------------------------------------------------------------------------


def _number(path: Path, key: str, value: Any) -> Number:
    # bool is an int in Python; ``true`` in a figure cell is a typing slip, not 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{path}：{key} 中的值 {value!r} 不是数字")
    return value


def _numbers(path: Path, key: str, value: Any, widths: tuple[int, ...], what: str) -> list[Number]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}：{key} 应为数字列表（{what}）")
    if len(value) not in widths:
        expected = " 或 ".join(str(w) for w in widths)
        raise ConfigError(f"{path}：{key} 应有 {expected} 个数（{what}），实际 {len(value)} 个")
    return [_number(path, key, item) for item in value]


def _table(path: Path, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{path}：{key} 应为表（[{key}]）")
    return value


def _unknown(path: Path, prefix: str, given: dict[str, Any], known: list[str]) -> None:
    extra = [k for k in given if k not in known]
    if extra:
        shown = "、".join(f"{prefix}{k}" for k in extra)
        raise ConfigError(
            f"{path}：未知的填报项 {shown}（{prefix.rstrip('.') or '顶层'} 可用的项：{'、'.join(known)}）"
        )


def load_inputs(root: Path, year: int) -> AnnualInputs:
    """Read ``config/annual/<year>.toml``; a missing file gives zeros with everything listed as missing."""
    inputs = zero_inputs(year)
    fmt = inputs.format
    path = inputs_path(root, year)
    inputs.path = path
    if not path.is_file():
        inputs.missing.append(f"整个填报文件 {path}（可用 --init-inputs 生成）")
        return inputs
    data = load_toml(path)
    _unknown(path, "", data, ["format", "text", "section2", "section3", "section4"])
    stated = data.get("format")
    if stated is not None and stated != fmt.notice:
        raise ConfigError(
            f"{path}：format = {stated!r}，但{year}年度报告应使用 {fmt.notice} 格式；"
            "请用 --init-inputs 为该年重新生成填报文件"
        )

    texts = _table(path, data, "text")
    _unknown(path, "text.", texts, list(TEXT_FIELDS))
    for key, (where, _hint) in TEXT_FIELDS.items():
        if key not in texts:
            inputs.missing.append(f"{where}的文字（text.{key}）")
        elif not isinstance(texts[key], str):
            raise ConfigError(f"{path}：text.{key} 应为文字（用引号括起）")
        else:
            inputs.texts[key] = texts[key]

    section2 = _table(path, data, "section2")
    _unknown(path, "section2.", section2, [b.key for b in fmt.section2])
    for block in fmt.section2:
        given = section2.get(block.key, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{path}：section2.{block.key} 应为表（[section2.{block.key}]）")
        _unknown(path, f"section2.{block.key}.", given, [line.key for line in block.rows])
        columns = "、".join(c.label for c in block.columns)
        for line in block.rows:
            key = f"section2.{block.key}.{line.key}"
            if line.key not in given:
                inputs.missing.append(f"二、{block.article} {line.label}（{key}）")
                continue
            values = _numbers(path, key, given[line.key], (len(block.columns),), columns)
            inputs.section2[block.key][line.key] = values

    section3 = _table(path, data, "section3")
    leaves = {leaf.key: leaf for _p, leaf in fmt.request_leaves() if leaf.key is not None}
    _unknown(path, "section3.", section3, list(leaves))
    width = len(fmt.request_columns)
    columns3 = "、".join(c.label for c in fmt.request_columns)
    for key, leaf in leaves.items():
        if key not in section3:
            if key != RESULTS_TOTAL:
                inputs.missing.append(f"三、{leaf.label}（section3.{key}）")
            continue
        values = _numbers(path, f"section3.{key}", section3[key], (width - 1, width), columns3)
        if len(values) == width - 1:
            values.append(sum(values))  # 总计 left out: computed
        inputs.section3[key] = values
    if RESULTS_TOTAL not in section3:
        # （七）总计 left out: computed from the result rows, column by column.
        rows = [inputs.section3[k] for k in fmt.result_keys()]
        inputs.section3[RESULTS_TOTAL] = [sum(row[i] for row in rows) for i in range(width)]

    section4 = _table(path, data, "section4")
    _unknown(path, "section4.", section4, [key for key, _labels in APPEAL_ROWS])
    width4 = len(fmt.appeal_columns)
    columns4 = "、".join(c.label for c in fmt.appeal_columns)
    for key, labels in APPEAL_ROWS:
        if key not in section4:
            inputs.missing.append(f"四、{'·'.join(labels)}（section4.{key}）")
            continue
        values = _numbers(path, f"section4.{key}", section4[key], (width4 - 1, width4), columns4)
        if len(values) == width4 - 1:
            values.append(sum(values))
        inputs.section4[key] = values
    return inputs


# --- writing ---------------------------------------------------------------------------------------


def _toml_text(text: str) -> str:
    if "\n" not in text or any(ch < " " and ch not in "\n\t" for ch in text):
        return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    # A multi-line basic string: the newline right after the opening quotes is not part of the value.
    body = text.replace("\\", "\\\\").replace('"""', '""\\"')
    return '"""\n' + body + '"""'


def _toml_number(value: Number) -> str:
    return repr(value)


def _toml_list(values: list[Number]) -> str:
    return "[" + ", ".join(_toml_number(v) for v in values) + "]"


def _aligned(entries: list[tuple[str, str]]) -> Iterator[str]:
    """``key = value  # comment`` lines with the comments in one column."""
    width = max((len(assignment) for assignment, _c in entries), default=0)
    for assignment, comment in entries:
        yield f"{assignment.ljust(width)}  # {comment}" if comment else assignment


def dump_inputs(inputs: AnnualInputs) -> str:
    """The inputs file, commented in Chinese; ``load_inputs`` reads back exactly these values."""
    fmt = inputs.format
    out: list[str] = [
        f"# {inputs.year}年政府信息公开工作年度报告：统计库之外需要填报的数字和文字。",
        f"# 格式：{fmt.notice}。由 channelwatch report annual --year {inputs.year} --init-inputs 生成。",
        "# 一、总体情况中“通过政府网站、微博……公开政府信息共N条”那句话由程序根据统计库自动生成，不在此填写。",
        "# 数字须为不小于 0 的整数（“本年增/减”可为负数，金额可有小数）；缺少的项按 0 显示并给出提示。",
        "",
        f"format = {json.dumps(fmt.notice, ensure_ascii=False)}  # 本年度适用的报告格式，请勿修改",
        "",
        "[text]",
        "# 文字部分：每行一段。多行文字写在三个双引号之间。",
    ]
    for key, (where, hint) in TEXT_FIELDS.items():
        out.append(f"# {where}：{hint}")
        out.append(f"{key} = {_toml_text(inputs.texts.get(key, ''))}")
    out.append("")
    out.append(f"# {fmt.sections[1]}：每行一个列表，依次对应各列。")
    for block in fmt.section2:
        out.append(f"[section2.{block.key}]")
        out.append(f"# {block.article}：依次为 {'、'.join(c.label for c in block.columns)}")
        entries = [
            (f"{line.key} = {_toml_list(inputs.section2[block.key][line.key])}", line.label) for line in block.rows
        ]
        out.extend(_aligned(entries))
        out.append("")
    out.append("[section3]")
    out.append(f"# {fmt.sections[2]}：每行 7 个数，依次为")
    out.append(f"#   {'、'.join(c.label for c in fmt.request_columns)}")
    out.append("#   （第 2 至 6 个数为法人或其他组织的各类别）。")
    out.append("# 勾稽关系：一 + 二 = 三（七）总计 + 四，逐列成立；（七）总计 = 三中各项之和；总计列 = 前 6 列之和。")
    out.append("# 总计列可省略（只写 6 个数），（七）总计行可删除：程序会自动计算。")
    entries = []
    for parents, leaf in fmt.request_leaves():
        assert leaf.key is not None
        label = " ".join([*(p.label for p in parents[1:]), leaf.label])
        entries.append((f"{leaf.key} = {_toml_list(inputs.section3[leaf.key])}", label))
    out.extend(_aligned(entries))
    out.append("")
    out.append("[section4]")
    out.append(f"# {fmt.sections[3]}：每行 5 个数，依次为")
    out.append(f"#   {'、'.join(c.label for c in fmt.appeal_columns)}")
    out.append("# 总计可省略（只写 4 个数），程序会自动计算。")
    entries = [(f"{key} = {_toml_list(inputs.section4[key])}", "·".join(labels)) for key, labels in APPEAL_ROWS]
    out.extend(_aligned(entries))
    return "\n".join(out) + "\n"


def write_initial_inputs(root: Path, year: int) -> Path:
    """Write the zeroed, commented inputs file of ``year``; never overwrite one that exists."""
    path = inputs_path(root, year)
    if path.exists():
        raise ConfigError(f"{path} 已存在，为避免覆盖已填写的内容，未写出。如需重新生成，请先删除或改名该文件")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_inputs(zero_inputs(year)), encoding="utf-8")
    return path
