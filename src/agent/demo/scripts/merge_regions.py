#!/usr/bin/env python3
"""Merge the per-region CSVs of a fan-out into one workbook, one sheet per region.

Usage: python3 merge_regions.py <workstreams dir> <output.xlsx>

Each workstream's folder (<dir>/<id>/) holds one region's CSV. Every region gets
a sheet with its rows (numbers as numbers, a bold frozen header) and a total row
with a live SUM formula; a "Summary" sheet lists each region's total as a formula
over its sheet, with a grand total and a bar chart. Prints a one-line JSON summary.
On bad input a short message goes to stderr and the exit code is 2.
"""

from __future__ import annotations

import csv
import json
import os
import sys

try:
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
except ImportError:  # pragma: no cover - depends on the environment
    sys.stderr.write("merge_regions: error: the Python package 'openpyxl' is not installed\n")
    sys.exit(3)

PROG = "merge_regions"
REGION_NAMES = ("region", "area", "territory", "zone", "market", "district", "branch")
VALUE_NAMES = ("revenue", "sales", "amount", "total", "turnover", "value", "income")


def fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(2)


def cell(text: str):
    t = text.strip()
    try:
        return int(t) if t.isdigit() else float(t.replace(",", ""))
    except ValueError:
        return t


def sheet_title(name: str, taken: set[str]) -> str:
    base = "".join(ch for ch in name if ch not in "[]:*?/\\")[:28] or "Region"
    title, n = base, 2
    while title.lower() in taken:
        title, n = f"{base} {n}", n + 1
    taken.add(title.lower())
    return title


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        fail("usage: merge_regions.py <workstreams dir> <output.xlsx>")
    root, target = argv[1], argv[2]
    try:
        folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    except OSError as e:
        fail(f"cannot list {root}: {e.strerror}")
    book = Workbook()
    summary = book.active
    summary.title = "Summary"
    summary.append(["Region", "Rows", "Total"])
    for c in summary[1]:
        c.font = Font(bold=True)
    taken = {"summary"}
    regions, rows_total, grand = 0, 0, 0.0
    for folder in folders:
        for name in sorted(os.listdir(os.path.join(root, folder))):
            if not name.lower().endswith(".csv"):
                continue
            with open(os.path.join(root, folder, name), newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
            if len(rows) < 2:
                continue
            header = [h.strip() for h in rows[0]]
            lower = [h.lower() for h in header]
            region_col = next((i for i, h in enumerate(lower) if h in REGION_NAMES), None)
            value_col = next((i for i, h in enumerate(lower) if h in VALUE_NAMES), len(header) - 1)
            label = rows[1][region_col].strip() if region_col is not None else folder
            ws = book.create_sheet(sheet_title(label, taken))
            ws.append(header)
            for c in ws[1]:
                c.font = Font(bold=True)
            ws.freeze_panes = "A2"
            for r in rows[1:]:
                ws.append([cell(v) for v in r])
            last = len(rows)
            col = get_column_letter(value_col + 1)
            ws.append(["Total"] + [None] * (value_col - 1) + [f"=SUM({col}2:{col}{last})"])
            ws.cell(row=last + 1, column=1).font = Font(bold=True)
            quoted = ws.title.replace("'", "''")
            summary.append([ws.title, len(rows) - 1, f"='{quoted}'!{col}{last + 1}"])
            regions += 1
            rows_total += len(rows) - 1
            grand += sum((cell(r[value_col]) if isinstance(cell(r[value_col]), (int, float)) else 0) for r in rows[1:] if len(r) > value_col)
    if regions == 0:
        fail(f"no region CSVs under {root}")
    end = regions + 1
    summary.append(["Total", f"=SUM(B2:B{end})", f"=SUM(C2:C{end})"])
    chart = BarChart()
    chart.title = "Revenue by region"
    chart.add_data(Reference(summary, min_col=3, min_row=1, max_row=end), titles_from_data=True)
    chart.set_categories(Reference(summary, min_col=1, min_row=2, max_row=end))
    summary.add_chart(chart, "E2")
    book.calculation.fullCalcOnLoad = True
    book.save(target)
    print(json.dumps({"regions": regions, "rows": rows_total, "total": round(grand, 2)}))


if __name__ == "__main__":
    main(sys.argv)
