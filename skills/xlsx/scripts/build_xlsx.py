#!/usr/bin/env python3
"""Builds an .xlsx workbook from a JSON spec with openpyxl: sheets of rows, live formulas,
number formats, column widths, a frozen header, an optional totals row and charts.

Usage: python3 build_xlsx.py SPEC.json OUT.xlsx
Prints one JSON line: {"sheets": [...], "formulas": N, "charts": N, "out": "..."}.
The spec is described in ../SKILL.md.
"""
import json
import sys

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, PieChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

FORMATS = {
    "money": '#,##0.00',
    "integer": '#,##0',
    "percent": '0.0%',
    "date": 'yyyy-mm-dd',
    "text": '@',
}
HEADER_FILL = PatternFill("solid", fgColor="1F2A44")
HEADER_FONT = Font(bold=True, color="FFFFFF")


def fail(message):
    sys.stderr.write(f"build_xlsx: {message}\n")
    sys.exit(1)


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{path} is not valid JSON: {e}")


def add_sheet(wb, spec, index):
    name = str(spec.get("name") or f"Sheet{index + 1}")[:31]
    ws = wb.create_sheet(name)
    columns = spec.get("columns") or []
    rows = spec.get("rows") or []
    if not isinstance(rows, list):
        fail(f"sheet {name}: rows must be a list of lists")
    formulas = 0
    header = [c.get("header", "") if isinstance(c, dict) else str(c) for c in columns]
    start = 1
    if header:
        ws.append(header)
        for cell in ws[1]:
            cell.fill = HEADER_FILL
            cell.font = HEADER_FONT
            cell.alignment = Alignment(horizontal="center")
        ws.freeze_panes = "A2"
        start = 2
    for row in rows:
        if not isinstance(row, list):
            fail(f"sheet {name}: each row must be a list")
        ws.append(row)
        formulas += sum(1 for v in row if isinstance(v, str) and v.startswith("="))
    last = ws.max_row
    totals = spec.get("totals")
    if totals and rows:
        label_col = 1
        ws.cell(row=last + 1, column=label_col, value=totals.get("label", "Total")).font = Font(bold=True)
        for col in totals.get("columns", []):
            letter = col if isinstance(col, str) else get_column_letter(int(col))
            cell = ws[f"{letter}{last + 1}"]
            cell.value = f"=SUM({letter}{start}:{letter}{last})"
            cell.font = Font(bold=True)
            formulas += 1
    for i, col in enumerate(columns, start=1):
        if not isinstance(col, dict):
            continue
        letter = get_column_letter(i)
        fmt = col.get("format")
        if fmt:
            number_format = FORMATS.get(fmt, fmt)
            for r in range(start, ws.max_row + 1):
                ws[f"{letter}{r}"].number_format = number_format
        width = col.get("width")
        if width is None:
            longest = max([len(str(col.get("header", "")))] + [len(str(r[i - 1])) for r in rows if len(r) >= i and not str(r[i - 1]).startswith("=")])
            width = min(max(10, longest + 2), 60)
        ws.column_dimensions[letter].width = width
    charts = 0
    for chart_spec in spec.get("charts") or []:
        add_chart(ws, chart_spec, start, last)
        charts += 1
    return name, formulas, charts


def add_chart(ws, spec, first_row, last_row):
    kind = spec.get("type", "bar")
    chart = {"bar": BarChart, "column": BarChart, "line": LineChart, "pie": PieChart}.get(kind)
    if chart is None:
        fail(f"chart type {kind} is not one of bar, column, line, pie")
    c = chart()
    if kind == "bar":
        c.type = "col"
    elif kind == "column":
        c.type = "col"
    c.title = spec.get("title")
    cat_col = int(spec.get("categories_column", 1))
    value_cols = spec.get("value_columns") or [2]
    header_row = first_row - 1 if first_row > 1 else first_row
    end = int(spec.get("last_row", last_row))
    for vc in value_cols:
        data = Reference(ws, min_col=int(vc), min_row=header_row, max_row=end)
        c.add_data(data, titles_from_data=first_row > 1)
    cats = Reference(ws, min_col=cat_col, min_row=first_row, max_row=end)
    c.set_categories(cats)
    if kind != "pie":
        c.y_axis.title = spec.get("y_title")
        c.x_axis.title = spec.get("x_title")
    c.height = spec.get("height", 8)
    c.width = spec.get("width", 16)
    ws.add_chart(c, spec.get("anchor") or f"{get_column_letter(ws.max_column + 2)}2")


def main():
    if len(sys.argv) != 3:
        fail("usage: python3 build_xlsx.py SPEC.json OUT.xlsx")
    spec_path, out = sys.argv[1], sys.argv[2]
    if not out.lower().endswith(".xlsx"):
        fail("the output file must end in .xlsx")
    spec = load(spec_path)
    sheets = spec.get("sheets") if isinstance(spec, dict) else None
    if not isinstance(sheets, list) or not sheets:
        fail("the spec needs a non-empty list of sheets")
    wb = Workbook()
    wb.remove(wb.active)
    names, formulas, charts = [], 0, 0
    for i, s in enumerate(sheets):
        name, f, c = add_sheet(wb, s, i)
        names.append(name)
        formulas += f
        charts += c
    wb.save(out)
    print(json.dumps({"sheets": names, "formulas": formulas, "charts": charts, "out": out}))


if __name__ == "__main__":
    main()
