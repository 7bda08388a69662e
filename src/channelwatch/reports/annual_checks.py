"""Checks run before the annual report is written.

Inspectors reject a report whose section 三 does not balance or whose text contradicts its tables,
and such a report is published for good: so every rule that the national format states is checked
here, and each mismatch names its section, row and column.

- Values: counts are whole numbers ≥ 0; 本年增/减 may be negative; amounts may have decimals.
- Section 三: the 总计 column is the sum of the applicant columns; （七）总计 is the sum of the result
  rows; and the balance rule 一 + 二 = 三（七）总计 + 四 holds column by column.
- Section 四: each 总计 is the sum of the four results beside it.
- Text: a paragraph that states a figure contradicting its table ("未收到政府信息公开申请" while 本年新收
  is not 0; "收到申请5件" while it is 3; the same for 行政复议 and 行政诉讼).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from channelwatch.reports.annual_formats import (
    APPEAL_ROWS,
    LITIGATION,
    RESULTS_TOTAL,
    REVIEW,
    Column,
)
from channelwatch.reports.annual_inputs import TEXT_FIELDS, AnnualInputs, Number

__all__ = ["Mismatch", "check_inputs", "show_number"]

SECTION2, SECTION3, SECTION4, TEXT = "section2", "section3", "section4", "text"


@dataclass(frozen=True)
class Mismatch:
    """One failed check. ``cells`` are the table cells (table, row key, column index) to mark in a
    forced draft; a text mismatch marks the text field (``("text", field, paragraph index)``)."""

    section: str
    row: str
    column: str
    message: str
    cells: tuple[tuple[str, str, int], ...] = ()

    def describe(self) -> str:
        where = f"{self.section}｜行「{self.row}」"
        if self.column:
            where += f"｜列「{self.column}」"
        return f"{where}：{self.message}"


def show_number(value: Number) -> str:
    """A figure as a report shows it: 3, -2, 12.5 (never 3.0 or 1e+06)."""
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def _value_problem(value: Number, column: Column) -> str | None:
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if column.kind == "amount":
        return f"金额不能为负数（填写 {show_number(value)}）" if value < 0 else None
    if not whole:
        return f"应为整数（填写 {show_number(value)}）"
    if column.kind == "count" and value < 0:
        return f"不能为负数（填写 {show_number(value)}）"
    return None


def check_inputs(inputs: AnnualInputs) -> list[Mismatch]:
    fmt = inputs.format
    title2, title3, title4 = fmt.sections[1], fmt.sections[2], fmt.sections[3]
    found: list[Mismatch] = []

    for block in fmt.section2:
        for line in block.rows:
            for index, column in enumerate(block.columns):
                value = inputs.section2[block.key][line.key][index]
                problem = _value_problem(value, column)
                if problem:
                    cell = (SECTION2, f"{block.key}.{line.key}", index)
                    found.append(Mismatch(f"{title2}（{block.article}）", line.label, column.label, problem, (cell,)))

    columns = fmt.request_columns
    labels = {leaf.key: leaf.label for _p, leaf in fmt.request_leaves() if leaf.key is not None}
    rows = inputs.section3
    for key, label in labels.items():
        for index, column in enumerate(columns):
            problem = _value_problem(rows[key][index], column)
            if problem:
                found.append(Mismatch(title3, label, column.label, problem, ((SECTION3, key, index),)))
    total_index = len(columns) - 1
    for key, label in labels.items():
        parts = rows[key][:total_index]
        if rows[key][total_index] != sum(parts):
            found.append(
                Mismatch(
                    title3,
                    label,
                    columns[total_index].label,
                    f"总计列填写 {show_number(rows[key][total_index])}，但各类申请人之和为 {show_number(sum(parts))}",
                    ((SECTION3, key, total_index),),
                )
            )
    result_keys = fmt.result_keys()
    results_label = next(row.label for row in fmt.section3 if row.children)
    total_label = labels[RESULTS_TOTAL]
    for index, column in enumerate(columns):
        added = sum(rows[k][index] for k in result_keys)
        if rows[RESULTS_TOTAL][index] != added:
            found.append(
                Mismatch(
                    title3,
                    total_label,
                    column.label,
                    f"填写 {show_number(rows[RESULTS_TOTAL][index])}，但{results_label}各项之和为 {show_number(added)}",
                    ((SECTION3, RESULTS_TOTAL, index),),
                )
            )
    for index, column in enumerate(columns):
        received, carried_over = rows["received"][index], rows["carried_over"][index]
        results, carried_forward = rows[RESULTS_TOTAL][index], rows["carried_forward"][index]
        came, went = received + carried_over, results + carried_forward
        if came != went:
            found.append(
                Mismatch(
                    title3,
                    f"{labels['received']} + {labels['carried_over']} ≠ {total_label} + {labels['carried_forward']}",
                    column.label,
                    f"勾稽关系不成立：{show_number(received)} + {show_number(carried_over)} = {show_number(came)}，"
                    f"而 {show_number(results)} + {show_number(carried_forward)} = {show_number(went)}",
                    tuple((SECTION3, k, index) for k in ("received", "carried_over", RESULTS_TOTAL, "carried_forward")),
                )
            )

    appeal_columns = fmt.appeal_columns
    last = len(appeal_columns) - 1
    for key, header in APPEAL_ROWS:
        values = inputs.section4[key]
        row_label = "·".join(header)
        for index, column in enumerate(appeal_columns):
            problem = _value_problem(values[index], column)
            if problem:
                found.append(Mismatch(title4, row_label, column.label, problem, ((SECTION4, key, index),)))
        if values[last] != sum(values[:last]):
            found.append(
                Mismatch(
                    title4,
                    row_label,
                    appeal_columns[last].label,
                    f"填写 {show_number(values[last])}，但前四项之和为 {show_number(sum(values[:last]))}",
                    ((SECTION4, key, last),),
                )
            )

    found.extend(_text_checks(inputs))
    return found


# A clause that says nothing of the kind happened: 未收到…申请, 没有发生…行政复议, 无…行政诉讼.
_NONE = re.compile(r"(?:未|没有|无)(?:收到|受理|发生|出现|涉及|产生)?")
_NO_REQUESTS = re.compile(r"(?:未|没有)(?:收到|受理)[^，,]{0,16}?申请")
_STATED_REQUESTS = re.compile(r"(?:收到|新收|受理)([^，,\d]{0,20}?申请[^，,\d]{0,6}?)(\d+)\s*(?:件|个|条|份)")
_STATED_APPEALS = re.compile(r"(行政复议|行政诉讼)[^，,\d]{0,6}?(\d+)\s*(?:件|起|个|次)")


def _clauses(text: str) -> list[tuple[int, str]]:
    """(paragraph index, clause) for each clause: paragraphs are lines; clauses end at 。；;!?！？."""
    found: list[tuple[int, str]] = []
    for index, paragraph in enumerate(line for line in text.splitlines() if line.strip()):
        found.extend((index, clause) for clause in re.split(r"[。；;！？!?]", paragraph) if clause.strip())
    return found


def _text_checks(inputs: AnnualInputs) -> list[Mismatch]:
    fmt = inputs.format
    received_label = fmt.request_row("received").label
    total = fmt.request_columns[-1].label
    received = inputs.received_total()
    review = inputs.section4["review"][-1]
    litigation = inputs.section4["litigation_direct"][-1] + inputs.section4["litigation_after_review"][-1]
    found: list[Mismatch] = []
    for key, (where, _hint) in TEXT_FIELDS.items():
        for paragraph, clause in _clauses(inputs.texts.get(key, "")):
            quoted = clause.strip()
            mark = ((TEXT, key, paragraph),)
            said = f"第{paragraph + 1}段称「{quoted}」"
            if _NO_REQUESTS.search(clause) and received:
                found.append(
                    Mismatch(where, received_label, total, f"{said}，但表三中本年新收 {show_number(received)} 件", mark)
                )
            for match in _STATED_REQUESTS.finditer(clause):
                middle = match.group(1)
                if "复议" in middle or "诉讼" in middle or "结转" in middle:
                    continue
                stated = int(match.group(2))
                if stated != received:
                    found.append(
                        Mismatch(
                            where,
                            received_label,
                            total,
                            f"{said}（{stated} 件），但表三中本年新收 {show_number(received)} 件",
                            mark,
                        )
                    )
            negated = _NONE.search(clause) is not None and not re.search(r"\d", clause)
            for word, figure, label in ((REVIEW, review, REVIEW), (LITIGATION, litigation, LITIGATION)):
                if word in clause and negated and figure:
                    found.append(
                        Mismatch(where, label, total, f"{said}，但表四中{label}总计 {show_number(figure)} 件", mark)
                    )
            for match in _STATED_APPEALS.finditer(clause):
                word, stated = match.group(1), int(match.group(2))
                figure = review if word == REVIEW else litigation
                if stated != figure:
                    found.append(
                        Mismatch(
                            where,
                            word,
                            total,
                            f"{said}（{stated} 件），但表四中{word}总计 {show_number(figure)} 件",
                            mark,
                        )
                    )
    return found
