"""The annual 政府信息公开工作年度报告 draft.

One model, three outputs. ``build_annual_report`` gathers the channel figures from the store, the
office's inputs from ``config/annual/<year>.toml`` and the year's national format, runs the checks,
and lays sections 二 to 四 out as :class:`Grid` tables (cells with row and column spans, exactly as
the national template draws them). The text comes from Jinja2 templates under ``annual/`` (an
instance's ``templates/annual/`` overrides the packaged ones). Markdown and HTML are templates over
the model; Word is ``docx_writer.write_docx`` over the same model.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channelwatch.render import render
from channelwatch.reports.annual_checks import SECTION2, SECTION3, SECTION4, TEXT, check_inputs, show_number
from channelwatch.reports.annual_formats import (
    APPEAL_ROWS,
    APPLICANT_HEADER,
    BALANCE_NOTE,
    LEGAL_PERSON,
    LITIGATION,
    REVIEW,
    ROW_LABEL_HEADER,
    AnnualFormat,
    Block,
)
from channelwatch.reports.annual_inputs import AnnualInputs, load_inputs
from channelwatch.reports.annual_model import ANNUAL_FORMATS, MARK, AnnualReport, Cell, Grid, Layout, Section

if TYPE_CHECKING:
    from channelwatch.store import Store

__all__ = [
    "ANNUAL_FORMATS",
    "AnnualReport",
    "Cell",
    "Grid",
    "Section",
    "build_annual_report",
    "default_output_name",
    "write_annual_report",
]


# --- tables ----------------------------------------------------------------------------------------


def _figure(value: Any, marked: bool) -> Cell:
    text = show_number(value)
    return Cell(text + MARK if marked else text, marked=marked)


def _block_grid(block: Block, inputs: AnnualInputs, marks: set[tuple[str, str, int]], width: int) -> Grid:
    """One 第二十条 block: the article across the top, then 信息内容 and the columns, then the rows.
    A block with fewer columns than the widest stretches its last column, as the template does."""
    layout = Layout(2 + len(block.rows), width)
    layout.put(0, 0, Cell(block.article, colspan=width, header=True))
    spans = [1] * len(block.columns)
    spans[-1] += width - 1 - len(block.columns)
    layout.put(1, 0, Cell(ROW_LABEL_HEADER, header=True))
    position = 1
    for column, span in zip(block.columns, spans, strict=True):
        layout.put(1, position, Cell(column.label, colspan=span, header=True))
        position += span
    for r, line in enumerate(block.rows, start=2):
        layout.put(r, 0, Cell(line.label, header=True))
        position = 1
        for index, span in enumerate(spans):
            value = inputs.section2[block.key][line.key][index]
            cell = _figure(value, (SECTION2, f"{block.key}.{line.key}", index) in marks)
            cell.colspan = span
            layout.put(r, position, cell)
            position += span
    return Grid(layout.rows, header_rows=2, caption=block.article)


def _requests_grid(fmt: AnnualFormat, inputs: AnnualInputs, marks: set[tuple[str, str, int]]) -> Grid:
    """Section 三: three label columns (row, sub-row, item) and the seven applicant columns."""
    labels = 3
    columns = fmt.request_columns
    width = labels + len(columns)
    leaves = fmt.request_leaves()
    header = 3
    layout = Layout(header + len(leaves), width)
    layout.put(0, 0, Cell(BALANCE_NOTE, rowspan=3, colspan=labels, header=True))
    layout.put(0, labels, Cell(APPLICANT_HEADER, colspan=len(columns), header=True))
    layout.put(1, labels, Cell(columns[0].label, rowspan=2, header=True))
    layout.put(1, labels + 1, Cell(LEGAL_PERSON, colspan=len(columns) - 2, header=True))
    layout.put(1, width - 1, Cell(columns[-1].label, rowspan=2, header=True))
    for index, column in enumerate(columns[1:-1], start=labels + 1):
        layout.put(2, index, Cell(column.label, header=True))

    # Label cells: a heading spans down over its figure rows; a row without sub-rows spans right.
    def place(rows: tuple[Any, ...], top: int, depth: int) -> int:
        for row in rows:
            if row.children:
                size = sum(1 for _ in row.leaves())
                layout.put(top, depth, Cell(row.label, rowspan=size, header=True, align="left"))
                place(row.children, top, depth + 1)
                top += size
            else:
                layout.put(top, depth, Cell(row.label, colspan=labels - depth, header=True, align="left"))
                top += 1
        return top

    place(fmt.section3, header, 0)
    for r, (_parents, leaf) in enumerate(leaves, start=header):
        assert leaf.key is not None
        for index, value in enumerate(inputs.section3[leaf.key]):
            layout.put(r, labels + index, _figure(value, (SECTION3, leaf.key, index) in marks))
    return Grid(layout.rows, header_rows=header, label_columns=labels, font_size=9, caption=fmt.sections[2])


def _appeals_grid(fmt: AnnualFormat, inputs: AnnualInputs, marks: set[tuple[str, str, int]]) -> Grid:
    """Section 四: 行政复议 (five columns) and 行政诉讼 (two groups of five), one row of figures."""
    per = len(fmt.appeal_columns)
    width = per * len(APPEAL_ROWS)
    layout = Layout(4, width)
    layout.put(0, 0, Cell(REVIEW, colspan=per, header=True))
    layout.put(0, per, Cell(LITIGATION, colspan=width - per, header=True))
    for index, column in enumerate(fmt.appeal_columns):
        layout.put(1, index, Cell(column.label, rowspan=2, header=True))
    for group, (key, labels) in enumerate(APPEAL_ROWS):
        start = group * per
        if group:
            layout.put(1, start, Cell(labels[-1], colspan=per, header=True))
            for index, column in enumerate(fmt.appeal_columns):
                layout.put(2, start + index, Cell(column.label, header=True))
        for index, value in enumerate(inputs.section4[key]):
            layout.put(3, start + index, _figure(value, (SECTION4, key, index) in marks))
    return Grid(layout.rows, header_rows=3, label_columns=0, font_size=8, caption=fmt.sections[3])


# --- the report -------------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    """Template output → paragraphs: one non-empty line is one paragraph."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _mark_text(section: Section, field_key: str, marks: set[tuple[str, str, int]], offsets: dict[str, int]) -> None:
    for kind, key, paragraph in marks:
        if kind == TEXT and key == field_key and field_key in offsets:
            index = offsets[field_key] + paragraph
            if index < len(section.paragraphs):
                section.marked_paragraphs.add(index)
                section.paragraphs[index] += MARK


def _text_offsets(paragraphs: list[str], inputs: AnnualInputs, keys: tuple[str, ...]) -> dict[str, int]:
    """Where each input field's first paragraph landed in a rendered section (templates may reorder)."""
    offsets: dict[str, int] = {}
    for key in keys:
        first = _lines(inputs.texts.get(key, ""))
        if first and first[0] in paragraphs:
            offsets[key] = paragraphs.index(first[0])
    return offsets


def build_annual_report(
    opened: Store,
    year: int,
    *,
    with_chart: bool = True,
) -> AnnualReport:
    """Everything the draft needs; raises nothing for failed checks (they are in ``mismatches``)."""
    from channelwatch import store
    from channelwatch.reports.summary import summary_sentence
    from channelwatch.stats.figures import Period, comparison_base, summarise

    instance = opened.instance
    inputs = load_inputs(instance.root, year)
    fmt = inputs.format
    keys = [c.id for c in instance.config.channels]
    with store.read(opened.engine) as conn:
        summary = summarise(conn, opened.office_id, Period(year), keys)
        before = summarise(conn, opened.office_id, Period(year - 1), keys)
    previous = comparison_base(summary, before)
    templates = instance.templates_dir
    sentence = summary_sentence(summary, templates, previous)
    mismatches = check_inputs(inputs)
    marks = {cell for mismatch in mismatches for cell in mismatch.cells}

    context: dict[str, Any] = {
        "year": year,
        "office": summary.office,
        "short_name": summary.short_name,
        "format": fmt,
        "summary": summary,
        "previous": previous,
        "channel_sentence": sentence,
        "texts": inputs.texts,
        "inputs": inputs,
        "sections": fmt.sections,
    }
    title = render(templates, "annual/title.txt.j2", **context).strip()
    preamble = _lines(render(templates, "annual/preamble.txt.j2", **context))

    overview = Section(fmt.sections[0], _lines(render(templates, "annual/section_1.txt.j2", **context)))
    overview.chart_after = next(
        (i for i, text in enumerate(overview.paragraphs) if sentence and sentence[:20] in text),
        len(overview.paragraphs) - 1 if overview.paragraphs else None,
    )
    offsets = _text_offsets(overview.paragraphs, inputs, ("overview_intro", "overview"))
    for key in ("overview_intro", "overview"):
        _mark_text(overview, key, marks, offsets)
    widest = max(len(block.columns) for block in fmt.section2) + 1
    proactive = Section(
        fmt.sections[1],
        _lines(render(templates, "annual/section_2.txt.j2", **context)),
        [_block_grid(block, inputs, marks, widest) for block in fmt.section2],
    )
    requests = Section(
        fmt.sections[2],
        _lines(render(templates, "annual/section_3.txt.j2", **context)),
        [_requests_grid(fmt, inputs, marks)],
    )
    appeals = Section(
        fmt.sections[3],
        _lines(render(templates, "annual/section_4.txt.j2", **context)),
        [_appeals_grid(fmt, inputs, marks)],
    )
    problems = Section(fmt.sections[4], _lines(render(templates, "annual/section_5.txt.j2", **context)))
    _mark_text(problems, "problems", marks, _text_offsets(problems.paragraphs, inputs, ("problems",)))
    other = Section(fmt.sections[5], _lines(render(templates, "annual/section_6.txt.j2", **context)))
    _mark_text(other, "other_matters", marks, _text_offsets(other.paragraphs, inputs, ("other_matters",)))

    warnings: list[str] = []
    if inputs.missing:
        warnings.append(
            f"以下填报项缺失，按 0（或空白）显示，请在 {inputs.path} 中补充：\n"
            + "\n".join(f"  - {item}" for item in inputs.missing)
        )
    if summary.total == 0:
        warnings.append(f"统计库中没有{year}年的发布记录：总体情况中的渠道发布数字均为 0，请先导入或抓取该年的数据")
    chart = None
    if with_chart and summary.channels:
        from channelwatch.reports.chart import monthly_chart_png

        chart = monthly_chart_png(summary)
    return AnnualReport(
        title=title,
        year=year,
        office=summary.office,
        format=fmt,
        preamble=preamble,
        sections=[overview, proactive, requests, appeals, problems, other],
        channel_sentence=sentence,
        summary=summary,
        previous=previous,
        inputs=inputs,
        mismatches=mismatches,
        warnings=warnings,
        chart_png=chart,
    )


ANNUAL_SUFFIXES = {"docx": (".docx",), "markdown": (".md", ".markdown"), "html": (".html", ".htm")}
# Characters that Windows, macOS or Linux refuse in a file name, and controls: the title holds the office name.
_NOT_IN_FILE_NAMES = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


def default_output_name(report: AnnualReport, fmt: str) -> str:
    name = _NOT_IN_FILE_NAMES.sub("_", f"{report.title}（草稿）").strip(" .") or "年度报告（草稿）"
    return name + ANNUAL_SUFFIXES[fmt][0]


def next_free_path(path: Path) -> Path:
    """``path`` if no file has that name, else the first free ``name（2）.ext``, ``name（3）.ext``, …."""
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.stem}（{number}）{path.suffix}")
    return candidate


def _context(report: AnnualReport, chart_file: str | None = None) -> dict[str, Any]:
    return {"report": report, "mark": MARK, "chart_file": chart_file}


def annual_markdown(report: AnnualReport, templates_dir: Path | None, chart_file: str | None = None) -> str:
    return render(templates_dir, "annual/report.md.j2", **_context(report, chart_file))


def annual_html(report: AnnualReport, templates_dir: Path | None) -> str:
    return render(templates_dir, "annual/report.html.j2", **_context(report))


def write_annual_report(
    report: AnnualReport, fmt: str, target: Path | None, templates_dir: Path | None, *, overwrite: bool = False
) -> str | None:
    """Write the draft to ``target``; with no target, markdown and HTML are returned instead.

    The chart beside a Markdown draft never replaces a file of that name unless ``overwrite``.
    """
    if fmt == "docx":
        from channelwatch.reports.docx_writer import write_docx

        write_docx(report, target or Path(default_output_name(report, fmt)))
        return None
    if fmt == "html":
        text = annual_html(report, templates_dir)
    else:
        chart_file = None
        if target is not None and report.chart_png is not None:
            # Markdown cannot hold an image: the chart is written beside the draft and linked.
            chart_path = target.with_name(target.stem + "_每月发布数量.png")
            if not overwrite:
                chart_path = next_free_path(chart_path)
            chart_path.write_bytes(report.chart_png)
            chart_file = chart_path.name
        text = annual_markdown(report, templates_dir, chart_file)
    if target is None:
        return text
    target.write_text(text, encoding="utf-8")
    return None
