"""The two national formats of the annual report, as data: sections, tables, rows, columns, labels.

Every label is copied verbatim from ``docs/national-report-formats.md`` (the national
format notices 国办公开办函〔2019〕60号 and 国办公开办函〔2021〕30号). Inspectors compare a report's
tables with the national template cell by cell, so a label is never retyped or paraphrased: it lives
here once, and the inputs file, the checks, every output and the tests all read it from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from channelwatch.errors import UserError

__all__ = [
    "FORMATS",
    "AnnualFormat",
    "Block",
    "Column",
    "Line",
    "RequestRow",
    "format_for_year",
]

ColumnKind = Literal["count", "delta", "amount"]


@dataclass(frozen=True)
class Column:
    """A figure column. ``count``: a whole number ≥ 0; ``delta``: a whole number that may be negative
    (本年增/减); ``amount``: money, ≥ 0, decimals allowed."""

    label: str
    kind: ColumnKind = "count"


@dataclass(frozen=True)
class Line:
    """A row of a section 二 block: its key in the inputs file and its label."""

    key: str
    label: str


@dataclass(frozen=True)
class Block:
    """One 第二十条 block of section 二: its article heading, rows and columns."""

    key: str
    article: str
    rows: tuple[Line, ...]
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class RequestRow:
    """A row of section 三. Rows with children are headings only (三、本年度办理结果, （三）不予公开 …)
    and have no key; rows without children hold one figure per applicant column."""

    key: str | None
    label: str
    children: tuple[RequestRow, ...] = ()

    def leaves(self) -> Iterator[tuple[tuple[RequestRow, ...], RequestRow]]:
        """Each figure row below (or at) this one, with the headings above it."""
        if not self.children:
            yield (), self
            return
        for child in self.children:
            for parents, leaf in child.leaves():
                yield (self, *parents), leaf


# The key of （七）总计: the sum of the result rows, checked or computed.
RESULTS_TOTAL = "results_total"
# The first column of each section 二 block (the national template's own header, not in the reference
# list of rows and columns).
ROW_LABEL_HEADER = "信息内容"

NOTICE_2019 = "国办公开办函〔2019〕60号"
NOTICE_2021 = "国办公开办函〔2021〕30号"

SECTION_TITLES: tuple[str, ...] = (
    "一、总体情况",
    "二、主动公开政府信息情况",
    "三、收到和处理政府信息公开申请情况",
    "四、政府信息公开行政复议、行政诉讼情况",
    "五、存在的主要问题及改进情况",
    "六、其他需要报告的事项",
)

# Section 三: the header note and the applicant columns.
BALANCE_NOTE = "（本列数据的勾稽关系为：第一项加第二项之和，等于第三项加第四项之和）"
APPLICANT_HEADER = "申请人情况"
NATURAL_PERSON = "自然人"
LEGAL_PERSON = "法人或其他组织"
TOTAL = "总计"
REQUEST_COLUMNS: tuple[Column, ...] = (
    Column("自然人"),
    Column("商业企业"),
    Column("科研机构"),
    Column("社会公益组织"),
    Column("法律服务机构"),
    Column("其他"),
    Column(TOTAL),
)

# Section 四.
REVIEW = "行政复议"
LITIGATION = "行政诉讼"
LITIGATION_DIRECT = "未经复议直接起诉"
LITIGATION_AFTER_REVIEW = "复议后起诉"
APPEAL_COLUMNS: tuple[Column, ...] = (
    Column("结果维持"),
    Column("结果纠正"),
    Column("其他结果"),
    Column("尚未审结"),
    Column("总计"),
)

SECTION2_2019: tuple[Block, ...] = (
    Block(
        "item1",
        "第二十条第（一）项",
        (
            Line("rules", "规章"),
            Line("normative", "规范性文件"),
        ),
        (
            Column("本年新制作数量", "count"),
            Column("本年新公开数量", "count"),
            Column("对外公开总数量", "count"),
        ),
    ),
    Block(
        "item5",
        "第二十条第（五）项",
        (
            Line("licensing", "行政许可"),
            Line("other_services", "其他对外管理服务事项"),
        ),
        (
            Column("上一年项目数量", "count"),
            Column("本年增/减", "delta"),
            Column("处理决定数量", "count"),
        ),
    ),
    Block(
        "item6",
        "第二十条第（六）项",
        (
            Line("penalty", "行政处罚"),
            Line("enforcement", "行政强制"),
        ),
        (
            Column("上一年项目数量", "count"),
            Column("本年增/减", "delta"),
            Column("处理决定数量", "count"),
        ),
    ),
    Block(
        "item8",
        "第二十条第（八）项",
        (Line("fees", "行政事业性收费"),),
        (
            Column("上一年项目数量", "count"),
            Column("本年增/减", "delta"),
        ),
    ),
    Block(
        "item9",
        "第二十条第（九）项",
        (Line("procurement", "政府集中采购"),),
        (
            Column("采购项目数量", "count"),
            Column("采购总金额（元）", "amount"),
        ),
    ),
)

SECTION2_2021: tuple[Block, ...] = (
    Block(
        "item1",
        "第二十条第（一）项",
        (
            Line("rules", "规章"),
            Line("normative", "行政规范性文件"),
        ),
        (
            Column("本年制发件数", "count"),
            Column("本年废止件数", "count"),
            Column("现行有效件数", "count"),
        ),
    ),
    Block(
        "item5",
        "第二十条第（五）项",
        (Line("licensing", "行政许可"),),
        (Column("本年处理决定数量", "count"),),
    ),
    Block(
        "item6",
        "第二十条第（六）项",
        (
            Line("penalty", "行政处罚"),
            Line("enforcement", "行政强制"),
        ),
        (Column("本年处理决定数量", "count"),),
    ),
    Block(
        "item8",
        "第二十条第（八）项",
        (Line("fees", "行政事业性收费"),),
        (Column("本年收费金额（单位：万元）", "amount"),),
    ),
)


def _section3(other: RequestRow) -> tuple[RequestRow, ...]:
    """Section 三's rows; the two formats differ only in （六）其他处理."""
    return (
        RequestRow("received", "一、本年新收政府信息公开申请数量"),
        RequestRow("carried_over", "二、上年结转政府信息公开申请数量"),
        RequestRow(
            None,
            "三、本年度办理结果",
            (
                RequestRow("disclosed", "（一）予以公开"),
                RequestRow("partial", "（二）部分公开（区分处理的，只计这一情形，不计其他情形）"),
                RequestRow(
                    None,
                    "（三）不予公开",
                    (
                        RequestRow("withheld_secret", "1.属于国家秘密"),
                        RequestRow("withheld_law", "2.其他法律行政法规禁止公开"),
                        RequestRow("withheld_security", "3.危及“三安全一稳定”"),
                        RequestRow("withheld_third_party", "4.保护第三方合法权益"),
                        RequestRow("withheld_internal", "5.属于三类内部事务信息"),
                        RequestRow("withheld_process", "6.属于四类过程性信息"),
                        RequestRow("withheld_enforcement_file", "7.属于行政执法案卷"),
                        RequestRow("withheld_query", "8.属于行政查询事项"),
                    ),
                ),
                RequestRow(
                    None,
                    "（四）无法提供",
                    (
                        RequestRow("unavailable_not_held", "1.本机关不掌握相关政府信息"),
                        RequestRow("unavailable_needs_making", "2.没有现成信息需要另行制作"),
                        RequestRow("unavailable_unclear", "3.补正后申请内容仍不明确"),
                    ),
                ),
                RequestRow(
                    None,
                    "（五）不予处理",
                    (
                        RequestRow("not_processed_petition", "1.信访举报投诉类申请"),
                        RequestRow("not_processed_repeat", "2.重复申请"),
                        RequestRow("not_processed_publication", "3.要求提供公开出版物"),
                        RequestRow("not_processed_mass", "4.无正当理由大量反复申请"),
                        RequestRow("not_processed_confirm", "5.要求行政机关确认或重新出具已获取信息"),
                    ),
                ),
                other,
                RequestRow(RESULTS_TOTAL, "（七）总计"),
            ),
        ),
        RequestRow("carried_forward", "四、结转下年度继续办理"),
    )


SECTION3_2019 = _section3(RequestRow("other", "（六）其他处理"))
SECTION3_2021 = _section3(
    RequestRow(
        None,
        "（六）其他处理",
        (
            RequestRow("other_no_completion", "1.申请人无正当理由逾期不补正、行政机关不再处理其政府信息公开申请"),
            RequestRow("other_no_fee", "2.申请人逾期未按收费通知要求缴纳费用、行政机关不再处理其政府信息公开申请"),
            RequestRow("other_other", "3.其他"),
        ),
    )
)


# The rows of section 四: key in the inputs file, and the header cells above its five columns.
APPEAL_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("review", (REVIEW,)),
    ("litigation_direct", (LITIGATION, LITIGATION_DIRECT)),
    ("litigation_after_review", (LITIGATION, LITIGATION_AFTER_REVIEW)),
)


@dataclass(frozen=True)
class AnnualFormat:
    key: str
    notice: str
    section2: tuple[Block, ...]
    section3: tuple[RequestRow, ...]
    sections: tuple[str, ...] = SECTION_TITLES
    request_columns: tuple[Column, ...] = REQUEST_COLUMNS
    appeal_columns: tuple[Column, ...] = APPEAL_COLUMNS
    first_year: int = 0
    last_year: int | None = None
    _leaves: tuple[tuple[tuple[RequestRow, ...], RequestRow], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        leaves = tuple(pair for row in self.section3 for pair in row.leaves())
        object.__setattr__(self, "_leaves", leaves)

    def request_leaves(self) -> tuple[tuple[tuple[RequestRow, ...], RequestRow], ...]:
        """Every figure row of section 三, in table order, with its headings."""
        return self._leaves

    def request_row(self, key: str) -> RequestRow:
        for _parents, leaf in self._leaves:
            if leaf.key == key:
                return leaf
        raise KeyError(key)

    def result_keys(self) -> list[str]:
        """The rows that （七）总计 adds up: every figure row under 三、本年度办理结果 but the total."""
        return [
            leaf.key for parents, leaf in self._leaves if parents and leaf.key is not None and leaf.key != RESULTS_TOTAL
        ]

    def table_labels(self) -> list[str]:
        """Every label of sections 二 to 四 (headings, rows, columns), for checks and tests."""
        labels: list[str] = [ROW_LABEL_HEADER]
        for block in self.section2:
            labels.append(block.article)
            labels.extend(line.label for line in block.rows)
            labels.extend(column.label for column in block.columns)
        labels += [BALANCE_NOTE, APPLICANT_HEADER, NATURAL_PERSON, LEGAL_PERSON]
        labels.extend(column.label for column in self.request_columns)

        def walk(rows: tuple[RequestRow, ...]) -> None:
            for row in rows:
                labels.append(row.label)
                walk(row.children)

        walk(self.section3)
        labels += [REVIEW, LITIGATION, LITIGATION_DIRECT, LITIGATION_AFTER_REVIEW]
        labels.extend(column.label for column in self.appeal_columns)
        return list(dict.fromkeys(labels))


FORMAT_2019 = AnnualFormat("2019", NOTICE_2019, SECTION2_2019, SECTION3_2019, first_year=2019, last_year=2020)
FORMAT_2021 = AnnualFormat("2021", NOTICE_2021, SECTION2_2021, SECTION3_2021, first_year=2021)
FORMATS: dict[str, AnnualFormat] = {f.key: f for f in (FORMAT_2019, FORMAT_2021)}


def format_for_year(year: int) -> AnnualFormat:
    """The 2019 format for the 2019 and 2020 reports, the 2021 format from 2021 on."""
    for candidate in FORMATS.values():
        if year >= candidate.first_year and (candidate.last_year is None or year <= candidate.last_year):
            return candidate
    raise UserError(
        f"{year}年没有适用的年度报告格式：国家统一格式（{NOTICE_2019}）自2019年度报告起施行，请指定 2019 年或以后的年份"
    )
