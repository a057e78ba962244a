#!/usr/bin/env python3
"""Summarise a sales-style CSV into an Excel workbook.

Usage: python3 sales_to_xlsx.py <input.csv> <output.xlsx>

The workbook gets two sheets:
  * "Data"   - the CSV rows with real numbers (and dates), a bold frozen header,
               sensible column widths and number formats;
  * "Totals" - one row per region with live SUMIF formulas over the Data sheet,
               a grand total with SUM, and a native bar chart of the totals.

Columns are found by name, case-insensitively: the region column is the first
one called region/area/territory (or similar), the value column the first
numeric one called revenue/sales/amount/total (or similar, otherwise the last
numeric column), and an optional units column (units/qty/quantity/...).

openpyxl writes formulas without cached results; the workbook is flagged for a
full recalculation so Excel / LibreOffice compute them when it is opened.

On success a one-line JSON summary is printed to stdout. On bad input a short
message goes to stderr and the exit code is 2.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import sys

try:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.chart.data_source import AxDataSource, StrRef
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write("sales_to_xlsx: error: the Python package 'openpyxl' is not installed\n")
    sys.exit(3)

PROG = "sales_to_xlsx"

REGION_NAMES = ("region", "area", "territory", "zone", "market", "district", "branch")
VALUE_NAMES = ("revenue", "sales", "amount", "total", "turnover", "value", "income")
UNIT_NAMES = ("units", "unit", "qty", "quantity", "volume", "count", "items", "pieces")

CURRENCY_CHARS = "$€£¥₹ \u00a0\u202f'"
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
GROUPED_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")


class InputError(Exception):
    pass


def fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(2)


def parse_number(text: str):
    """Parse '1,234.50', '$99', '(12.00)', '1.234,5', '12%' ... -> float, or None if not a number."""
    s = text.strip()
    if not s:
        return None
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative, s = True, s[1:-1]
    s = s.strip(CURRENCY_CHARS)
    if s.endswith("%"):
        s = s[:-1]
    for ch in CURRENCY_CHARS:
        s = s.replace(ch, "")
    if s.startswith("-"):
        negative, s = (not negative), s[1:]
    elif s.startswith("+"):
        s = s[1:]
    s = s.strip(CURRENCY_CHARS)
    if not s or not re.match(r"^[\d.,]+$", s) or not re.search(r"\d", s):
        return None
    if "," in s and "." in s:
        if s.rfind(",") > s.rfind("."):  # 1.234,56
            s = s.replace(".", "").replace(",", ".")
        else:  # 1,234.56
            s = s.replace(",", "")
    elif "," in s:
        s = s.replace(",", "") if GROUPED_THOUSANDS.match(s) else s.replace(",", ".")
    try:
        value = float(s)
    except ValueError:
        return None
    return -value if negative else value


def parse_date(text: str):
    m = ISO_DATE.match(text.strip())
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def read_csv(path: str):
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise InputError(f"{path} is empty")
    sample = text[:8192]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(text.splitlines(), dialect) if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise InputError(f"{path} needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    width = len(header)
    if width < 2:
        raise InputError(f"{path} has only one column; expected a region column and a numeric column")
    for i, name in enumerate(header):
        if not name:
            header[i] = f"Column {get_column_letter(i + 1)}"
    data = []
    for row in rows[1:]:
        cells = [c.strip() for c in row[:width]]
        cells += [""] * (width - len(cells))
        data.append(cells)
    return header, data


def name_matches(header: str, names) -> bool:
    h = header.strip().lower()
    words = re.split(r"[^a-z0-9]+", h)
    return any(h == n or n in words for n in names)


def first_named(header, columns, names):
    """The first of `columns` whose header matches the earliest possible entry of `names`."""
    for name in names:
        for i in columns:
            if name_matches(header[i], (name,)):
                return i
    return None


def classify_columns(header, data):
    numeric, dates = [], []
    for i in range(len(header)):
        values = [row[i] for row in data if row[i] != ""]
        if not values:
            continue
        if all(parse_date(v) is not None for v in values):
            dates.append(i)
        elif all(parse_number(v) is not None for v in values):
            numeric.append(i)
    return numeric, dates


def pick_columns(header, data):
    numeric, dates = classify_columns(header, data)

    text_columns = [i for i in range(len(header)) if i not in numeric and i not in dates]
    region = first_named(header, text_columns, REGION_NAMES)
    if region is None:
        found = ", ".join(header)
        raise InputError(
            f"could not find a region column (looked for {'/'.join(REGION_NAMES[:3])}); columns are: {found}"
        )

    candidates = [i for i in numeric if i != region]
    if not candidates:
        raise InputError(
            "could not find a numeric value column (revenue/sales/amount/total, or any column of numbers); "
            f"columns are: {', '.join(header)}"
        )
    # "total_units" is a unit count, not a value: prefer columns that do not look like units.
    not_units = [i for i in candidates if not name_matches(header[i], UNIT_NAMES)]
    value = first_named(header, not_units, VALUE_NAMES)
    if value is None:
        value = first_named(header, candidates, VALUE_NAMES)
    if value is None:
        value = (not_units or candidates)[-1]
    units = first_named(header, [i for i in candidates if i != value], UNIT_NAMES)
    return region, value, units, numeric, dates


def display_name(header: str) -> str:
    h = header.replace("_", " ").strip()
    return h[:1].upper() + h[1:] if h else h


def build_workbook(header, data, region, value, units, numeric, dates):
    wb = Workbook()
    ws = wb.active
    ws.title = "Data"

    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    thin = Side(style="thin", color="999999")

    ints = {i for i in numeric if all(float(parse_number(r[i])).is_integer() for r in data if r[i] != "")}
    money_like = {value} | {i for i in numeric if name_matches(header[i], ("price", "cost", "revenue", "amount"))}

    ws.append(header)
    for cell in ws[1]:
        cell.font = bold
        cell.fill = head_fill
        cell.border = Border(bottom=thin)
        cell.alignment = Alignment(horizontal="center", vertical="center")

    for r, row in enumerate(data, start=2):
        for c, raw in enumerate(row):
            if c == region:
                v = raw or "(none)"
            elif raw == "":
                v = None
            elif c in dates:
                v = parse_date(raw)
            elif c in numeric:
                num = parse_number(raw)
                v = int(num) if c in ints else num
            else:
                v = raw
            cell = ws.cell(row=r, column=c + 1, value=v)
            if c in dates:
                cell.number_format = "yyyy-mm-dd"
            elif c in numeric:
                cell.number_format = "#,##0.00" if (c in money_like or c not in ints) else "#,##0"

    for c, name in enumerate(header):
        longest = max([len(name)] + [len(row[c]) for row in data[:2000]])
        if c in numeric or c in dates:
            longest += 3  # thousands separators / decimals / date digits
        ws.column_dimensions[get_column_letter(c + 1)].width = min(max(longest + 2, 8), 50)
    ws.freeze_panes = "A2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(header))}{len(data) + 1}"
    ws.print_title_rows = "1:1"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True

    # ---- Totals -------------------------------------------------------------
    totals = {}
    unit_totals = {}
    for row in data:
        key = row[region] or "(none)"
        totals[key] = totals.get(key, 0.0) + (parse_number(row[value]) or 0.0)
        if units is not None:
            unit_totals[key] = unit_totals.get(key, 0.0) + (parse_number(row[units]) or 0.0)
    regions = sorted(totals, key=lambda k: (-totals[k], k.lower()))

    ts = wb.create_sheet("Totals")
    reg_col = get_column_letter(region + 1)
    val_col = get_column_letter(value + 1)
    region_range = f"Data!${reg_col}:${reg_col}"
    value_range = f"Data!${val_col}:${val_col}"

    value_title = display_name(header[value])
    if units is not None:
        unit_title = display_name(header[units])
        unit_formula = "=SUMIF({rng},A{row},Data!${col}:${col})"
        unit_col_letter = get_column_letter(units + 1)
    else:
        unit_title = "Rows"
        unit_formula = "=COUNTIF({rng},A{row})"
        unit_col_letter = None

    ts.append([display_name(header[region]), unit_title, value_title])
    for cell in ts[1]:
        cell.font = bold
        cell.fill = head_fill
        cell.border = Border(bottom=thin)
        cell.alignment = Alignment(horizontal="center", vertical="center")

    for i, name in enumerate(regions, start=2):
        ts.cell(row=i, column=1, value=name)
        ts.cell(row=i, column=2, value=unit_formula.format(rng=region_range, row=i, col=unit_col_letter))
        ts.cell(row=i, column=3, value=f"=SUMIF({region_range},A{i},{value_range})")
        ts.cell(row=i, column=2).number_format = "#,##0" if (units is None or units in ints) else "#,##0.00"
        ts.cell(row=i, column=3).number_format = "#,##0.00"

    last = len(regions) + 1
    total_row = last + 1
    ts.cell(row=total_row, column=1, value="Total").font = bold
    ts.cell(row=total_row, column=2, value=f"=SUM(B2:B{last})").font = bold
    ts.cell(row=total_row, column=3, value=f"=SUM(C2:C{last})").font = bold
    ts.cell(row=total_row, column=2).number_format = ts.cell(row=2, column=2).number_format
    ts.cell(row=total_row, column=3).number_format = "#,##0.00"
    for c in range(1, 4):
        ts.cell(row=total_row, column=c).border = Border(top=thin)

    ts.column_dimensions["A"].width = min(max([len(r) for r in regions] + [len(ts["A1"].value), 10]) + 4, 40)
    ts.column_dimensions["B"].width = max(len(unit_title) + 4, 12)
    ts.column_dimensions["C"].width = max(len(value_title) + 4, 16)
    ts.freeze_panes = "A2"

    chart = BarChart()
    chart.type = "col"
    chart.style = 10
    chart.title = f"{value_title} by {display_name(header[region]).lower()}"
    chart.y_axis.title = value_title
    chart.x_axis.title = display_name(header[region])
    chart.y_axis.numFmt = "#,##0"
    # Newer Excel builds hide axes whose <c:delete> flag is missing or true.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.legend = None
    chart.x_axis.axPos = "b"
    chart.add_data(Reference(ts, min_col=3, min_row=1, max_row=last), titles_from_data=True)
    # Region names are text: reference them with strRef (set_categories would use numRef).
    chart.series[0].cat = AxDataSource(strRef=StrRef(f=f"'Totals'!$A$2:$A${last}"))
    chart.height = 8.5
    chart.width = 16
    ts.add_chart(chart, "E2")
    # Print the totals and the chart together on one landscape page.
    ts.page_setup.orientation = "landscape"
    ts.page_setup.fitToWidth = 1
    ts.page_setup.fitToHeight = 1
    ts.sheet_properties.pageSetUpPr.fitToPage = True

    wb.active = wb.index(ts)
    wb.calculation.fullCalcOnLoad = True
    return wb, regions, sum(totals.values())


def main(argv) -> int:
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        sys.stderr.write(f"usage: python3 {os.path.basename(argv[0])} <input.csv> <output.xlsx>\n")
        return 2
    src, out = argv[1], argv[2]
    try:
        header, data = read_csv(src)
        region, value, units, numeric, dates = pick_columns(header, data)
    except InputError as exc:
        fail(str(exc))
    wb, regions, total = build_workbook(header, data, region, value, units, numeric, dates)
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    try:
        wb.save(out)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    summary = {
        "regions": len(regions),
        "rows": len(data),
        "total": round(total, 2),
        "region_column": header[region],
        "value_column": header[value],
        "units_column": header[units] if units is not None else None,
        "output": out,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
