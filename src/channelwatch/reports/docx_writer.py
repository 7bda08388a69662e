"""The annual report draft as a Word document (python-docx): real tables, A4, the fonts offices use.

Layout follows what county offices hand in (GB/T 9704 党政机关公文格式, as far as a draft needs it):
A4 with 3.7/3.5/2.8/2.6 cm margins, the title in 方正小标宋简体 二号 (22 pt), section headings in 黑体
三号, body text in 仿宋_GB2312 三号 (16 pt) at a fixed 28 pt line pitch with a two-character indent,
tables in 宋体 with their header rows repeated on every page (w:tblHeader) and never split inside a
row. A machine without those fonts substitutes its own; the names are what the office's Word expects.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channelwatch.spreadsheet import xml_text

if TYPE_CHECKING:
    from channelwatch.reports.annual_model import AnnualReport, Grid

__all__ = ["write_docx"]

TITLE_FONT = "方正小标宋简体"
HEADING_FONT = "黑体"
BODY_FONT = "仿宋_GB2312"
TABLE_FONT = "宋体"
TEXT_WIDTH_CM = 21.0 - 2.8 - 2.6


def _set_font(run_or_style: Any, name: str, size: float | None = None, *, bold: bool | None = None) -> None:
    """Set the Latin and the East Asian font: Word takes Chinese glyphs from w:eastAsia only."""
    from docx.oxml.ns import qn
    from docx.shared import Pt

    font = run_or_style.font
    font.name = name
    if size is not None:
        font.size = Pt(size)
    if bold is not None:
        font.bold = bold
    r_pr = run_or_style.element.get_or_add_rPr()
    fonts = r_pr.get_or_add_rFonts()
    fonts.set(qn("w:eastAsia"), name)
    for theme in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(theme), None)


def _paragraph(
    document: Any,
    text: str,
    *,
    font: str = BODY_FONT,
    size: float = 16,
    indent: bool = True,
    align: str = "justify",
    red: bool = False,
    outline: int | None = None,
) -> Any:
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Pt, RGBColor

    paragraph = document.add_paragraph()
    paragraph.alignment = {
        "justify": WD_ALIGN_PARAGRAPH.JUSTIFY,
        "center": WD_ALIGN_PARAGRAPH.CENTER,
        "left": WD_ALIGN_PARAGRAPH.LEFT,
    }[align]
    paragraph.paragraph_format.first_line_indent = Pt(size * 2) if indent else Pt(0)
    run = paragraph.add_run(xml_text(text))  # a control character in a name would make python-docx refuse
    _set_font(run, font, size)
    if red:
        run.font.color.rgb = RGBColor(0xC0, 0x00, 0x00)
    if outline is not None:
        # An outline level puts the heading into Word's navigation pane without the Heading styles'
        # blue theme fonts.
        level = OxmlElement("w:outlineLvl")
        level.set(qn("w:val"), str(outline))
        paragraph._p.get_or_add_pPr().append(level)
    return paragraph


def _column_widths(grid: Grid) -> list[float]:
    if grid.label_columns == 3:
        labels = [1.6, 2.0, 3.8]
    elif grid.label_columns == 1:
        labels = [4.0]
    else:
        labels = []
    rest = grid.width - len(labels)
    each = (TEXT_WIDTH_CM - sum(labels)) / rest if rest else 0
    return labels + [each] * rest


def _shade(cell: Any, fill: str) -> None:
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    shading = OxmlElement("w:shd")
    shading.set(qn("w:val"), "clear")
    shading.set(qn("w:color"), "auto")
    shading.set(qn("w:fill"), fill)
    cell._tc.get_or_add_tcPr().append(shading)


def _table(document: Any, grid: Grid) -> Any:
    from docx.enum.table import WD_CELL_VERTICAL_ALIGNMENT, WD_TABLE_ALIGNMENT
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt, RGBColor

    table = document.add_table(rows=len(grid.rows), cols=grid.width)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    table.autofit = False
    widths = _column_widths(grid)
    # Both the grid (w:gridCol, which LibreOffice and WPS follow) and each cell (w:tcW, which Word follows).
    for index, column in enumerate(table.columns):
        column.width = Cm(widths[index])
    for row in table.rows:
        for index, cell in enumerate(row.cells):
            cell.width = Cm(widths[index])
    for r, c, spec in grid.cells():
        cell = table.cell(r, c)
        if spec.rowspan > 1 or spec.colspan > 1:
            cell = cell.merge(table.cell(r + spec.rowspan - 1, c + spec.colspan - 1))
        cell.vertical_alignment = WD_CELL_VERTICAL_ALIGNMENT.CENTER
        paragraph = cell.paragraphs[0]
        paragraph.alignment = WD_ALIGN_PARAGRAPH.LEFT if spec.align == "left" else WD_ALIGN_PARAGRAPH.CENTER
        form = paragraph.paragraph_format
        form.first_line_indent = Pt(0)
        form.line_spacing_rule = WD_LINE_SPACING.SINGLE
        form.space_before = form.space_after = Pt(1)
        run = paragraph.add_run(xml_text(spec.text))
        _set_font(run, TABLE_FONT, grid.font_size)
        if spec.marked:
            run.font.color.rgb = RGBColor(0xC0, 0x00, 0x00)
            _shade(cell, "FFFF00")
    for index, row in enumerate(table.rows):
        properties = row._tr.get_or_add_trPr()
        keep = OxmlElement("w:cantSplit")
        keep.set(qn("w:val"), "true")
        properties.append(keep)
        if index < grid.header_rows:
            header = OxmlElement("w:tblHeader")
            header.set(qn("w:val"), "true")
            properties.append(header)
    return table


def _page_number_footer(section: Any) -> None:
    from docx.enum.text import WD_ALIGN_PARAGRAPH
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    paragraph = section.footer.paragraphs[0]
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    paragraph.paragraph_format.first_line_indent = 0
    _set_font(paragraph.add_run("— "), TABLE_FONT, 14)
    field = OxmlElement("w:fldSimple")
    field.set(qn("w:instr"), "PAGE")
    inner = OxmlElement("w:r")
    text = OxmlElement("w:t")
    text.text = "1"
    inner.append(text)
    field.append(inner)
    paragraph._p.append(field)
    _set_font(paragraph.add_run(" —"), TABLE_FONT, 14)


def write_docx(report: AnnualReport, target: Path) -> Path:
    from docx import Document
    from docx.enum.text import WD_ALIGN_PARAGRAPH, WD_LINE_SPACING
    from docx.shared import Cm, Pt

    document = Document()
    document.core_properties.title = xml_text(report.title)
    document.core_properties.author = xml_text(report.office)
    document.core_properties.subject = f"政府信息公开工作年度报告（{report.format.notice}格式）"
    section = document.sections[0]
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    section.top_margin, section.bottom_margin = Cm(3.7), Cm(3.5)
    section.left_margin, section.right_margin = Cm(2.8), Cm(2.6)
    normal = document.styles["Normal"]
    _set_font(normal, BODY_FONT, 16)
    form = normal.paragraph_format
    form.line_spacing_rule = WD_LINE_SPACING.EXACTLY
    form.line_spacing = Pt(28)
    form.space_before = form.space_after = Pt(0)
    _page_number_footer(section)

    title = _paragraph(document, report.title, font=TITLE_FONT, size=22, indent=False, align="center", outline=0)
    title.paragraph_format.line_spacing = Pt(36)
    title.paragraph_format.space_after = Pt(16)
    if report.mismatches:
        from channelwatch.reports.annual_model import MARK

        _paragraph(
            document,
            f"核对未通过，本稿为强制生成（--force）：标 {MARK} 处须改正后才能发布。",
            size=12,
            indent=False,
            red=True,
        )
        for mismatch in report.mismatches:
            _paragraph(
                document, "· " + mismatch.describe(), size=10.5, indent=False, red=True, align="left"
            ).paragraph_format.line_spacing = Pt(16)
    for text in report.preamble:
        _paragraph(document, text)
    for part in report.sections:
        heading = _paragraph(document, part.title, font=HEADING_FONT, indent=True, outline=1)
        heading.paragraph_format.keep_with_next = True
        for index, text in enumerate(part.paragraphs):
            _paragraph(document, text, red=index in part.marked_paragraphs)
            if index == part.chart_after and report.chart_png is not None:
                document.add_picture(io.BytesIO(report.chart_png), width=Cm(15))
                picture = document.paragraphs[-1]
                picture.alignment = WD_ALIGN_PARAGRAPH.CENTER
                picture.paragraph_format.first_line_indent = Pt(0)
                # A fixed 28 pt line would crop the picture to one line's height.
                picture.paragraph_format.line_spacing_rule = WD_LINE_SPACING.SINGLE
        for grid in part.tables:
            _table(document, grid)
            # Two tables with nothing between them are drawn as one by Word.
            gap = _paragraph(document, "", size=6, indent=False)
            gap.paragraph_format.line_spacing = Pt(8)
    buffer = io.BytesIO()  # written in one piece: a failing disk leaves no half-closed zip behind
    document.save(buffer)
    Path(target).write_bytes(buffer.getvalue())
    return target
