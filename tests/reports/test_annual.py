"""``channelwatch report annual``: the annual report draft in the national format of its year.

Every test runs the real command on a real SQLite store holding the 2020 sample logs, and reads the
outputs back (Markdown and HTML as text, Word through python-docx).
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from channelwatch.cli import app
from channelwatch.errors import UserError
from channelwatch.reports.annual_formats import (
    BALANCE_NOTE,
    FORMAT_2019,
    FORMAT_2021,
    ROW_LABEL_HEADER,
    format_for_year,
)
from channelwatch.reports.annual_inputs import (
    TEXT_FIELDS,
    AnnualInputs,
    dump_inputs,
    inputs_path,
    load_inputs,
    zero_inputs,
)
from tests.conftest import REPO, SAMPLES, write_instance

SENTENCE_2020 = (
    "2020年我委通过政府网站、微博、微信公众号等形式公开政府信息（含转发）共1279条，其中政府网站公开信息6条、"
    "微博（含转发）1225条、微信公众号（含转发）48条。"
)
EXAMPLE_INPUTS = REPO / "config" / "annual" / "2020.toml"


def run(instance: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--instance", str(instance), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def loaded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_instance(tmp_path_factory.mktemp("annual") / "instance")
    result = run(root, "import-tree", str(SAMPLES))
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def instance(loaded_store: Path, tmp_path: Path) -> Path:
    """A private copy of the loaded store, so each test writes its own inputs and outputs."""
    return Path(shutil.copytree(loaded_store, tmp_path / "instance"))


def put_inputs(instance: Path, year: int, inputs: AnnualInputs | None = None, text: str | None = None) -> Path:
    path = inputs_path(instance, year)
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None:
        text = dump_inputs(inputs) if inputs is not None else EXAMPLE_INPUTS.read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    return path


def example_inputs(instance: Path) -> AnnualInputs:
    put_inputs(instance, 2020)
    return load_inputs(instance, 2020)


# --- the 2020 and 2021 drafts ------------------------------------------------------------------------


def test_2020_draft_has_the_channel_sentence_and_every_2019_label(instance: Path) -> None:
    put_inputs(instance, 2020)
    result = run(instance, "report", "annual", "--year", "2020", "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert SENTENCE_2020 in text
    for title in FORMAT_2019.sections:
        assert f"## {title}" in text
    for label in FORMAT_2019.table_labels():
        assert label in text, label
    # The example office's inputs pass every check and leave nothing missing.
    assert "提示" not in result.stderr
    assert "核对未通过" not in text


def test_2020_example_inputs_figures_land_in_their_rows(instance: Path) -> None:
    inputs = example_inputs(instance)
    text = run(instance, "report", "annual", "--year", "2020", "-f", "markdown").stdout
    for _parents, leaf in FORMAT_2019.request_leaves():
        assert leaf.key is not None
        figures = " | ".join(str(v) for v in inputs.section3[leaf.key])
        assert re.search(rf"\| {re.escape(leaf.label)} \|(?:  \|)* {re.escape(figures)} \|", text), leaf.label
    assert inputs.received_total() > 0


def test_2021_draft_uses_the_2021_format(instance: Path) -> None:
    assert run(instance, "report", "annual", "--year", "2021", "--init-inputs").exit_code == 0
    result = run(instance, "report", "annual", "--year", "2021", "-f", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    for label in ("本年制发件数", "本年废止件数", "现行有效件数"):
        assert label in text
    other = next(row for row in FORMAT_2021.section3[2].children if row.label == "（六）其他处理")
    assert len(other.children) == 3
    for row in other.children:
        assert f"| {row.label} |" in text
    for label in FORMAT_2021.table_labels():
        assert label in text, label
    assert "第二十条第（九）项" not in text
    assert "政府集中采购" not in text
    assert "本年新制作数量" not in text  # a 2019-format column
    assert "国办公开办函〔2021〕30号" in text


def test_year_on_year_clause_when_last_year_is_in_the_store(instance: Path) -> None:
    # Only 1 January 2021 is in the store: no comparison of a day with a whole year.
    partial = run(instance, "report", "annual", "--year", "2021", "-f", "markdown").stdout
    assert "与2020年" not in partial
    # A 2021 spread over every month (24 Weibo posts, besides the two New Year posts of the samples).
    export = instance / "weibo-2021.csv"
    rows = [f"{4600000000000000 + n},2021年第{n}条,2021-{n // 2 + 1:02d}-10 09:00,原创" for n in range(24)]
    export.write_text("微博ID,微博内容,发布时间,是否转发\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert run(instance, "import", "weibo", str(export)).exit_code == 0
    text = run(instance, "report", "annual", "--year", "2021", "-f", "markdown").stdout
    assert "2021年我委通过政府网站、微博、微信公众号等形式公开政府信息（含转发）共26条" in text
    # The website and the WeChat account published in 2020 but have nothing in 2021: not like with like.
    assert "与2020年" not in text


def test_format_of_each_year() -> None:
    assert format_for_year(2019) is FORMAT_2019
    assert format_for_year(2020) is FORMAT_2019
    assert format_for_year(2021) is FORMAT_2021
    assert format_for_year(2030) is FORMAT_2021
    with pytest.raises(UserError):
        format_for_year(2018)


def test_labels_are_verbatim_from_the_national_formats() -> None:
    text = (REPO / "docs" / "national-report-formats.md").read_text(encoding="utf-8")
    for fmt in (FORMAT_2019, FORMAT_2021):
        assert fmt.notice in text
        for label in [*fmt.sections, *fmt.table_labels()]:
            if label != ROW_LABEL_HEADER:  # the template's own column header, not listed in the reference
                assert label in text, label


# --- Word --------------------------------------------------------------------------------------------


def _header_rows(table: object) -> int:
    from docx.oxml.ns import qn

    rows = table.rows  # type: ignore[attr-defined]
    return sum(1 for row in rows if row._tr.trPr is not None and row._tr.trPr.find(qn("w:tblHeader")) is not None)


def test_docx_is_a_real_document_with_real_tables(instance: Path, tmp_path: Path) -> None:
    from docx import Document
    from docx.oxml.ns import qn
    from docx.shared import Cm

    inputs = example_inputs(instance)
    target = tmp_path / "2020.docx"
    result = run(instance, "report", "annual", "--year", "2020", "--output", str(target))
    assert result.exit_code == 0, result.output
    document = Document(str(target))

    section = document.sections[0]
    assert abs(section.page_width - Cm(21)) < Cm(0.05) and abs(section.page_height - Cm(29.7)) < Cm(0.05)
    normal_fonts = document.styles["Normal"].element.rPr.rFonts
    assert normal_fonts.get(qn("w:eastAsia")) == "仿宋_GB2312"
    paragraphs = [p.text for p in document.paragraphs]
    assert SENTENCE_2020 in paragraphs
    for title in FORMAT_2019.sections:
        assert title in paragraphs
    assert len(document.inline_shapes) == 1  # the monthly chart

    tables = document.tables
    assert len(tables) == len(FORMAT_2019.section2) + 2
    for block, table in zip(FORMAT_2019.section2, tables, strict=False):
        assert table.cell(0, 0).text == block.article
        assert [c.text for c in table.rows[1].cells][: len(block.columns) + 1] == [
            ROW_LABEL_HEADER,
            *[c.label for c in block.columns],
        ]
        for r, line in enumerate(block.rows, start=2):
            assert table.cell(r, 0).text == line.label
            assert [table.cell(r, 1 + i).text for i in range(len(block.columns))] == [
                str(v) for v in inputs.section2[block.key][line.key]
            ]
        assert _header_rows(table) == 2

    requests = tables[len(FORMAT_2019.section2)]
    assert requests.cell(0, 0).text == BALANCE_NOTE
    assert _header_rows(requests) == 3
    by_label = {}
    for row in requests.rows[3:]:
        texts = [cell.text for cell in row.cells]
        by_label[texts[2]] = texts[3:]  # a merged label cell repeats its text in the cells it covers
    for _parents, leaf in FORMAT_2019.request_leaves():
        assert leaf.key is not None
        assert by_label[leaf.label] == [str(v) for v in inputs.section3[leaf.key]], leaf.label

    appeals = tables[-1]
    assert appeals.cell(3, 0).text == str(inputs.section4["review"][0])
    assert appeals.cell(0, 0).text == "行政复议"
    assert _header_rows(appeals) == 3


def test_forced_docx_marks_the_failed_cells(instance: Path, tmp_path: Path) -> None:
    from docx import Document

    inputs = example_inputs(instance)
    inputs.section3["carried_forward"] = [1, 0, 0, 0, 0, 0, 1]
    put_inputs(instance, 2020, inputs)
    target = tmp_path / "forced.docx"
    assert run(instance, "report", "annual", "--year", "2020", "-o", str(target)).exit_code == 1
    assert not target.exists()
    assert run(instance, "report", "annual", "--year", "2020", "-o", str(target), "--force").exit_code == 0
    document = Document(str(target))
    assert any("核对未通过" in p.text for p in document.paragraphs)
    requests = document.tables[len(FORMAT_2019.section2)]
    carried = next(row for row in requests.rows if row.cells[0].text == "四、结转下年度继续办理")
    marked = [cell for cell in carried.cells[3:] if cell.text.endswith("※")]
    assert [cell.text for cell in marked] == ["1※", "1※"]  # 自然人 and 总计
    assert all('w:fill="FFFF00"' in cell._tc.xml for cell in marked)


def test_docx_default_file_name(instance: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put_inputs(instance, 2020)
    monkeypatch.chdir(tmp_path)
    result = run(instance, "report", "annual", "--year", "2020")
    assert result.exit_code == 0, result.output
    written = list(tmp_path.glob("*.docx"))
    assert [p.name for p in written] == ["彭阳县王洼产业园区管理委员会2020年政府信息公开工作年度报告（草稿）.docx"]


# --- HTML --------------------------------------------------------------------------------------------


def test_html_stands_alone_with_the_chart_inline(instance: Path, tmp_path: Path) -> None:
    put_inputs(instance, 2020)
    target = tmp_path / "2020.html"
    assert run(instance, "report", "annual", "--year", "2020", "-f", "html", "-o", str(target)).exit_code == 0
    html = target.read_text(encoding="utf-8")
    found = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert found is not None
    assert base64.b64decode(found.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    assert SENTENCE_2020 in html
    assert f'<th rowspan="3" colspan="3">{BALANCE_NOTE}</th>' in html
    assert html.count("<thead>") == len(FORMAT_2019.section2) + 2
    assert "http" not in html.split("<body>", 1)[1]  # nothing fetched from elsewhere


# --- checks ------------------------------------------------------------------------------------------


def test_balance_violation_fails_naming_the_row_and_column(instance: Path, tmp_path: Path) -> None:
    inputs = example_inputs(instance)
    inputs.section3["carried_forward"] = [1, 0, 0, 0, 0, 0, 1]
    put_inputs(instance, 2020, inputs)
    target = tmp_path / "draft.md"
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown", "-o", str(target))
    assert result.exit_code == 1
    assert "勾稽关系不成立" in result.stderr
    assert "四、结转下年度继续办理" in result.stderr
    assert "列「自然人」" in result.stderr and "列「总计」" in result.stderr
    assert "列「商业企业」" not in result.stderr
    assert not target.exists()

    forced = run(instance, "report", "annual", "--year", "2020", "-f", "markdown", "-o", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    draft = target.read_text(encoding="utf-8")
    assert "核对未通过" in draft
    assert "| 四、结转下年度继续办理 |  |  | 1※ |" in draft


def test_total_column_and_results_total_are_checked(instance: Path) -> None:
    inputs = example_inputs(instance)
    inputs.section3["disclosed"][-1] += 1  # 总计 column no longer the sum of the applicant columns
    put_inputs(instance, 2020, inputs)
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown")
    assert result.exit_code == 1
    assert "行「（一）予以公开」｜列「总计」" in result.stderr
    assert "行「（七）总计」｜列「总计」" in result.stderr


def test_derived_totals_may_be_left_out(instance: Path) -> None:
    given = example_inputs(instance)
    text = EXAMPLE_INPUTS.read_text(encoding="utf-8")
    text = re.sub(r"^results_total = .*$", "", text, flags=re.M)
    text = re.sub(r"^received = \[3, 0, 0, 0, 0, 0, 3\]", "received = [3, 0, 0, 0, 0, 0]", text, flags=re.M)
    put_inputs(instance, 2020, text=text)
    inputs = load_inputs(instance, 2020)
    assert inputs.missing == []
    assert inputs.section3 == given.section3  # （七）总计 and the 总计 column computed as given
    assert run(instance, "report", "annual", "--year", "2020", "-f", "markdown").exit_code == 0


def test_negative_and_fractional_counts_fail(instance: Path) -> None:
    inputs = example_inputs(instance)
    inputs.section2["item1"]["rules"] = [-1, 1.5, 0]
    inputs.section2["item5"]["licensing"] = [5, -2, 3]  # 本年增/减 may be negative
    inputs.section2["item9"]["procurement"] = [1, 12500.5]  # an amount may have decimals
    put_inputs(instance, 2020, inputs)
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown")
    assert result.exit_code == 1
    assert "行「规章」｜列「本年新制作数量」：不能为负数（填写 -1）" in result.stderr
    assert "行「规章」｜列「本年新公开数量」：应为整数（填写 1.5）" in result.stderr
    assert "行政许可" not in result.stderr
    assert "政府集中采购" not in result.stderr


@pytest.mark.parametrize(
    ("field", "sentence", "row"),
    [
        ("overview", "本年度未收到依申请公开申请。", "一、本年新收政府信息公开申请数量"),
        ("overview", "全年共收到政府信息公开申请5件，均已按时办结。", "一、本年新收政府信息公开申请数量"),
        ("problems", "全年发生行政复议1件。", "行政复议"),
    ],
)
def test_text_contradicting_its_table_fails(instance: Path, field: str, sentence: str, row: str) -> None:
    inputs = example_inputs(instance)
    inputs.texts[field] = sentence
    put_inputs(instance, 2020, inputs)
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown")
    assert result.exit_code == 1
    assert f"行「{row}」" in result.stderr
    assert TEXT_FIELDS[field][0] in result.stderr

    forced = run(instance, "report", "annual", "--year", "2020", "-f", "markdown", "--force")
    assert forced.exit_code == 0
    assert sentence + "※" in forced.stdout


def test_text_agreeing_with_its_table_passes(instance: Path) -> None:
    inputs = example_inputs(instance)
    received = inputs.received_total()
    inputs.texts["overview"] = f"全年共收到政府信息公开申请{received}件。全年未发生政府信息公开行政复议、行政诉讼。"
    put_inputs(instance, 2020, inputs)
    assert run(instance, "report", "annual", "--year", "2020", "-f", "markdown").exit_code == 0


def test_bad_inputs_file_names_file_and_key(instance: Path) -> None:
    put_inputs(instance, 2020, text="[section3]\nreceived = [1, 2]\n")
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown")
    assert result.exit_code == 1
    assert "2020.toml" in result.stderr and "section3.received" in result.stderr and "实际 2 个" in result.stderr

    put_inputs(instance, 2020, text="[section2.item9]\nprocurement = [0, 0]\n")
    assert run(instance, "report", "annual", "--year", "2020", "-f", "markdown").exit_code == 0
    put_inputs(instance, 2021, text="[section2.item9]\nprocurement = [0, 0]\n")
    result = run(instance, "report", "annual", "--year", "2021", "-f", "markdown")
    assert result.exit_code == 1 and "section2.item9" in result.stderr


# --- inputs file -------------------------------------------------------------------------------------


@pytest.mark.parametrize("year", [2020, 2021])
def test_init_inputs_round_trips(instance: Path, year: int) -> None:
    result = run(instance, "report", "annual", "--year", str(year), "--init-inputs")
    assert result.exit_code == 0, result.output
    path = inputs_path(instance, year)
    written = path.read_text(encoding="utf-8")
    loaded = load_inputs(instance, year)
    zero = zero_inputs(year)
    assert loaded.missing == []
    assert (loaded.texts, loaded.section2, loaded.section3, loaded.section4) == (
        zero.texts,
        zero.section2,
        zero.section3,
        zero.section4,
    )
    fmt = format_for_year(year)
    for label in [line.label for block in fmt.section2 for line in block.rows] + [
        leaf.label for _p, leaf in fmt.request_leaves()
    ]:
        assert f"# {label}" in written or f" {label}\n" in written, label  # each row is commented in Chinese

    again = run(instance, "report", "annual", "--year", str(year), "--init-inputs")
    assert again.exit_code == 1 and "已存在" in again.stderr
    assert path.read_text(encoding="utf-8") == written


def test_filled_inputs_round_trip_through_the_file(instance: Path) -> None:
    inputs = zero_inputs(2021)
    inputs.texts["overview"] = '第一段，含"引号"和\\反斜杠。\n第二段：以三个引号结尾"""'
    inputs.texts["other_matters"] = "本年度未收取信息处理费。"
    inputs.section2["item8"]["fees"] = [1.25]
    inputs.section3["received"] = [2, 1, 0, 0, 0, 0, 3]
    inputs.section4["review"] = [1, 0, 0, 0, 1]
    put_inputs(instance, 2021, inputs)
    loaded = load_inputs(instance, 2021)
    assert loaded.missing == []
    assert (loaded.texts, loaded.section2, loaded.section3, loaded.section4) == (
        inputs.texts,
        inputs.section2,
        inputs.section3,
        inputs.section4,
    )


def test_missing_inputs_are_zero_and_listed(instance: Path) -> None:
    text = EXAMPLE_INPUTS.read_text(encoding="utf-8")
    text = text.split("[section4]")[0]  # no section 四 at all
    text = re.sub(r'^problems = """.*?"""\n', "", text, flags=re.M | re.S)
    put_inputs(instance, 2020, text=text)
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown")
    assert result.exit_code == 0, result.output
    assert "填报项缺失" in result.stderr
    assert "section4.review" in result.stderr and "section4.litigation_direct" in result.stderr
    assert "text.problems" in result.stderr
    assert "（待填写：存在的主要问题及改进情况" in result.stdout
    assert "| 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 |" in result.stdout


def test_no_inputs_file_at_all_still_drafts(instance: Path) -> None:
    result = run(instance, "report", "annual", "--year", "2020", "-f", "markdown")
    assert result.exit_code == 0
    assert "--init-inputs" in result.stderr
    assert SENTENCE_2020 in result.stdout


# --- templates and chart -----------------------------------------------------------------------------


def test_instance_templates_override_the_packaged_ones(instance: Path) -> None:
    put_inputs(instance, 2020)
    (instance / "templates" / "annual").mkdir(parents=True)
    (instance / "templates" / "annual" / "section_6.txt.j2").write_text(
        "本单位{{ year }}年：{{ texts.other_matters }}（上年共{{ previous.total if previous else '无' }}条）\n",
        encoding="utf-8",
    )
    text = run(instance, "report", "annual", "--year", "2020", "-f", "markdown").stdout
    assert "本单位2020年：本年度未收取信息处理费。（上年共无条）" in text


def test_chart_renders_chinese_with_a_font_that_has_the_glyphs(instance: Path, tmp_path: Path) -> None:
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    from channelwatch.reports.chart import cjk_font

    family = cjk_font()
    assert family is not None
    path = font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
    font = FT2Font(path)
    assert all(font.get_char_index(ord(ch)) for ch in "彭阳县各渠道每月发布数量微博微信公众号政府网站")

    target = tmp_path / "chart.png"
    result = run(instance, "summary", "--year", "2020", "--chart", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
