#!/usr/bin/env python3
"""Turn a sales-style CSV into a one-page brief, as markdown and PDF.

Usage: python3 sales_brief.py <input.csv> <out.md> <out.pdf>

The brief has the title "Sales brief", the date of the run (UTC), and a few
bullet points computed from the CSV: the total and the number of rows (with
the period when there is a date column), the regions with their totals, the
top region and its share of the total, the smallest region, and the top
product when there is a product column. The PDF is the same content on one
A4 page.

Columns are found by name, case-insensitively, the same way as
sales_to_xlsx.py: the region column is the first one called
region/area/territory (or similar), the value column the first numeric one
called revenue/sales/amount/total (or similar, otherwise the last numeric
column that does not look like a unit count).

On success a one-line JSON summary of the figures is printed to stdout. On bad
input a short message goes to stderr and the exit code is 2.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import sys
from xml.sax.saxutils import escape

try:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.stderr.write(f"sales_brief: error: missing Python package ({exc.name}); needs reportlab\n")
    sys.exit(3)

PROG = "sales_brief"
ELLIPSIS = "\u2026"

REGION_NAMES = ("region", "area", "territory", "zone", "market", "district", "branch")
VALUE_NAMES = ("revenue", "sales", "amount", "total", "turnover", "value", "income")
UNIT_NAMES = ("units", "unit", "qty", "quantity", "volume", "count", "items", "pieces")
PRODUCT_NAMES = ("product", "item", "sku", "plan", "category", "service")

CURRENCY_CHARS = "$€£¥₹ \u00a0\u202f'"
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
GROUPED_THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
MAX_NAME = 40  # region / product names are cut to this many characters
MAX_LISTED = 6  # regions named one by one in the regions bullet


class InputError(Exception):
    pass


def fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(2)


# ---------------------------------------------------------------------------
# Reading the CSV (as sales_to_xlsx.py)


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
    if b"\x00" in raw[:4096]:
        raise InputError(f"{path} looks like a binary file, expected a CSV")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise InputError(f"{path} is empty")
    try:
        dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
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
            header[i] = f"Column {i + 1}"
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


def pick_columns(header, data):
    numeric, dates = [], []
    for i in range(len(header)):
        values = [row[i] for row in data if row[i] != ""]
        if not values:
            continue
        if all(parse_date(v) is not None for v in values):
            dates.append(i)
        elif all(parse_number(v) is not None for v in values):
            numeric.append(i)

    text_columns = [i for i in range(len(header)) if i not in numeric and i not in dates]
    region = first_named(header, text_columns, REGION_NAMES)
    if region is None:
        raise InputError(
            f"could not find a region column (looked for {'/'.join(REGION_NAMES[:3])}); "
            f"columns are: {', '.join(header)}"
        )
    candidates = [i for i in numeric if i != region]
    if not candidates:
        raise InputError(
            "could not find a numeric value column (revenue/sales/amount/total, or any column of numbers); "
            f"columns are: {', '.join(header)}"
        )
    not_units = [i for i in candidates if not name_matches(header[i], UNIT_NAMES)]
    value = first_named(header, not_units, VALUE_NAMES)
    if value is None:
        value = first_named(header, candidates, VALUE_NAMES)
    if value is None:
        value = (not_units or candidates)[-1]
    product = first_named(header, [i for i in text_columns if i != region], PRODUCT_NAMES)
    date = dates[0] if dates else None
    return region, value, product, date


# ---------------------------------------------------------------------------
# The figures and the brief's content


def group_totals(data, key_col, value_col):
    totals = {}
    for row in data:
        key = row[key_col] or "(none)"
        totals[key] = totals.get(key, 0.0) + (parse_number(row[value_col]) or 0.0)
    return totals


def ranked(totals):
    return sorted(totals, key=lambda k: (-totals[k], k.lower()))


def money(value: float) -> str:
    return f"{value:,.2f}"


def share_of(value: float, total: float):
    """Percent of the total, one decimal; None when the total is not positive."""
    return round(value / total * 100, 1) if total > 0 else None


def short(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1].rstrip() + ELLIPSIS


def display_name(header: str) -> str:
    h = header.replace("_", " ").strip().lower()
    return h or "value"


def compute(header, data, region, value, product, date):
    totals = group_totals(data, region, value)
    order = ranked(totals)
    total = sum(totals.values())
    top, smallest = order[0], order[-1]
    facts = {
        "total": round(total, 2),
        "rows": len(data),
        "regions": len(order),
        "top_region": top,
        "top_value": round(totals[top], 2),
        "top_share": share_of(totals[top], total),
        "smallest_region": smallest,
        "smallest_value": round(totals[smallest], 2),
        "smallest_share": share_of(totals[smallest], total),
        "region_column": header[region],
        "value_column": header[value],
    }
    if date is not None:
        days = [parse_date(row[date]) for row in data if row[date]]
        days = [d for d in days if d is not None]
        if days:
            facts["period"] = [min(days).isoformat(), max(days).isoformat()]
    if product is not None:
        by_product = group_totals(data, product, value)
        best = ranked(by_product)[0]
        facts["top_product"] = best
        facts["top_product_value"] = round(by_product[best], 2)
        facts["top_product_share"] = share_of(by_product[best], total)
        facts["product_column"] = header[product]
    return facts, totals, order


def with_share(amount: float, share) -> str:
    return f"{money(amount)} ({share:.1f}% of the total)" if share is not None else money(amount)


def bullets(facts, totals, order):
    """The brief's bullet points as (label, text) pairs: plain text, escaped by each renderer."""
    what = display_name(facts["value_column"])
    rows = facts["rows"]
    first = f"{money(facts['total'])} from {rows} row{'s' if rows != 1 else ''}"
    if "period" in facts:
        start, end = facts["period"]
        first += f", {start} to {end}" if start != end else f", on {start}"
    items = [(f"Total {what}", first + ".")]

    listed = [f"{short(name)} {money(totals[name])}" for name in order[:MAX_LISTED]]
    if len(order) > MAX_LISTED:
        listed.append(f"{ELLIPSIS}and {len(order) - MAX_LISTED} more")
    count = facts["regions"]
    items.append(("Regions", f"{count} \u2013 " + ", ".join(listed) + "."))

    items.append(("Top region", f"{short(facts['top_region'])}, {with_share(facts['top_value'], facts['top_share'])}."))
    if count > 1:
        items.append((
            "Smallest region",
            f"{short(facts['smallest_region'])}, {with_share(facts['smallest_value'], facts['smallest_share'])}.",
        ))
    if "top_product" in facts:
        items.append((
            f"Top {display_name(facts['product_column'])}",
            f"{short(facts['top_product'])}, {with_share(facts['top_product_value'], facts['top_product_share'])}.",
        ))
    return items


# ---------------------------------------------------------------------------
# Markdown


MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md_escape(text: str) -> str:
    return MD_SPECIAL.sub(r"\\\1", text)


def render_md(title: str, meta: str, items, footer: str) -> str:
    lines = [f"# {title}", "", md_escape(meta), ""]
    lines += [f"- **{md_escape(label)}:** {md_escape(text)}" for label, text in items]
    lines += ["", f"_{md_escape(footer)}_", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# PDF (reportlab), the same approach as notes_to_brief.py


def pdf_fonts():
    candidates = [
        ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
        ("/usr/share/fonts/dejavu/DejaVuSans.ttf", "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf"),
    ]
    for regular, bold in candidates:
        if os.path.exists(regular) and os.path.exists(bold):
            try:
                pdfmetrics.registerFont(TTFont("BriefSans", regular))
                pdfmetrics.registerFont(TTFont("BriefSans-Bold", bold))
                return "BriefSans", "BriefSans-Bold"
            except Exception:  # noqa: BLE001 - fall back to the built-in font
                break
    return "Helvetica", "Helvetica-Bold"


def pdf_safe(text: str, builtin: bool) -> str:
    if builtin:  # the standard Helvetica encoding lacks most non-Latin-1 glyphs
        text = text.encode("cp1252", "replace").decode("cp1252")
    return escape(text)


def render_pdf(title: str, meta: str, items, footer: str, fonts) -> tuple[bytes, int]:
    regular, bold = fonts
    builtin = regular == "Helvetica"
    st = {
        "title": ParagraphStyle("t", fontName=bold, fontSize=22, leading=26, spaceAfter=4,
                                textColor=colors.HexColor("#1F3864")),
        "meta": ParagraphStyle("m", fontName=regular, fontSize=9.5, leading=12.5,
                               textColor=colors.HexColor("#555555")),
        "bullet": ParagraphStyle("l", fontName=regular, bulletFontName=regular, fontSize=11, leading=15,
                                 leftIndent=16, bulletIndent=4, spaceAfter=5),
    }
    story = [Paragraph(pdf_safe(title, builtin), st["title"]),
             Paragraph(pdf_safe(meta, builtin), st["meta"]),
             Spacer(1, 10)]
    for label, text in items:
        markup = f'<font name="{bold}">{pdf_safe(label, builtin)}:</font> {pdf_safe(text, builtin)}'
        story.append(Paragraph(markup, st["bullet"], bulletText="\u2022"))
    story += [Spacer(1, 10), Paragraph(pdf_safe(footer, builtin), st["meta"])]

    pages = {"n": 0}

    def count(_canvas, _doc):
        pages["n"] += 1

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=20 * mm, rightMargin=20 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=title, author="Handoff", subject="Sales brief",
                            initialFontName=regular)
    doc.build(story, onFirstPage=count, onLaterPages=count)
    return buf.getvalue(), pages["n"]


# ---------------------------------------------------------------------------


def main(argv) -> int:
    if len(argv) != 4 or argv[1] in ("-h", "--help"):
        sys.stderr.write(f"usage: python3 {os.path.basename(argv[0])} <input.csv> <out.md> <out.pdf>\n")
        return 2
    src, out_md, out_pdf = argv[1:4]
    try:
        header, data = read_csv(src)
        region, value, product, date = pick_columns(header, data)
    except InputError as exc:
        fail(str(exc))

    facts, totals, order = compute(header, data, region, value, product, date)
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    title = "Sales brief"
    meta = f"Date: {today} (UTC) \u00b7 Source: {short(os.path.basename(src))}"
    footer = "Figures computed by Handoff from every row of the CSV."
    items = bullets(facts, totals, order)

    pdf_bytes, pages = render_pdf(title, meta, items, footer, pdf_fonts())
    if pages > 1:
        sys.stderr.write(f"{PROG}: warning: the brief needs {pages} pages\n")
    for out in (out_md, out_pdf):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:
        with open(out_md, "w", encoding="utf-8") as fh:
            fh.write(render_md(title, meta, items, footer))
        with open(out_pdf, "wb") as fh:
            fh.write(pdf_bytes)
    except OSError as exc:
        fail(f"cannot write output: {exc.strerror or exc}")

    summary = {
        **facts,
        "date": today,
        "bullets": len(items),
        "pages": pages,
        "md": out_md,
        "pdf": out_pdf,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
