#!/usr/bin/env python3
"""One region's rows of a sales-style CSV, for one workstream of a fan-out.

Usage: python3 region_sheet.py <input.csv> <region> <output.csv>

Writes the rows whose region column equals <region> (case-insensitively) with the
header, and prints a one-line JSON summary: region, rows, total of the value column.
On bad input a short message goes to stderr and the exit code is 2.
"""

from __future__ import annotations

import csv
import json
import sys

PROG = "region_sheet"
REGION_NAMES = ("region", "area", "territory", "zone", "market", "district", "branch")
VALUE_NAMES = ("revenue", "sales", "amount", "total", "turnover", "value", "income")


def fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(2)


def number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        fail("usage: region_sheet.py <input.csv> <region> <output.csv>")
    source, region, target = argv[1], argv[2], argv[3]
    try:
        with open(source, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        fail(f"cannot read {source}: {e.strerror}")
    if len(rows) < 2:
        fail(f"{source} has no data rows")
    header = [h.strip() for h in rows[0]]
    lower = [h.lower() for h in header]
    region_col = next((i for i, h in enumerate(lower) if h in REGION_NAMES), None)
    if region_col is None:
        fail(f"{source} has no region column (looked for {', '.join(REGION_NAMES)})")
    value_col = next((i for i, h in enumerate(lower) if h in VALUE_NAMES), None)
    mine = [r for r in rows[1:] if len(r) > region_col and r[region_col].strip().lower() == region.strip().lower()]
    if not mine:
        fail(f"no rows for region {region!r} in {source}")
    with open(target, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(mine)
    total = 0.0
    if value_col is not None:
        total = sum(number(r[value_col]) or 0.0 for r in mine if len(r) > value_col)
    print(json.dumps({"region": mine[0][region_col].strip(), "rows": len(mine), "total": round(total, 2)}))


if __name__ == "__main__":
    main(sys.argv)
