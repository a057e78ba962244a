#!/usr/bin/env python3
"""Builds a Word document (.docx) from a JSON spec with python-docx: a title, headings,
paragraphs, bullet and numbered lists, tables with a styled header row, and page breaks.

Usage: python3 build_docx.py SPEC.json OUT.docx
Prints one JSON line: {"headings": N, "tables": N, "paragraphs": N, "out": "..."}.
The spec is described in ../SKILL.md.
"""
import json
import sys

from docx import Document
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt, RGBColor


def fail(message):
    sys.stderr.write(f"build_docx: {message}\n")
    sys.exit(1)


def shade(cell, color):
    props = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), color)
    props.append(shd)


def add_table(doc, spec):
    header = [str(h) for h in spec.get("header") or []]
    rows = spec.get("rows") or []
    cols = len(header) or max((len(r) for r in rows), default=0)
    if cols == 0:
        fail("a table needs a header or rows")
    table = doc.add_table(rows=0, cols=cols)
    table.style = "Table Grid"
    table.alignment = WD_TABLE_ALIGNMENT.CENTER
    if header:
        cells = table.add_row().cells
        for i, h in enumerate(header):
            cells[i].text = h
            run = cells[i].paragraphs[0].runs[0]
            run.bold = True
            run.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
            shade(cells[i], "1F2A44")
    for row in rows:
        cells = table.add_row().cells
        for i, value in enumerate(row[:cols]):
            cells[i].text = "" if value is None else str(value)
    if spec.get("caption"):
        p = doc.add_paragraph(str(spec["caption"]))
        p.runs[0].italic = True


def main():
    if len(sys.argv) != 3:
        fail("usage: python3 build_docx.py SPEC.json OUT.docx")
    spec_path, out = sys.argv[1], sys.argv[2]
    if not out.lower().endswith(".docx"):
        fail("the output file must end in .docx")
    try:
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        fail(f"cannot read {spec_path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{spec_path} is not valid JSON: {e}")
    if not isinstance(spec, dict) or not isinstance(spec.get("blocks"), list):
        fail("the spec needs a list of blocks")

    doc = Document()
    normal = doc.styles["Normal"]
    normal.font.name = spec.get("font", "Calibri")
    normal.font.size = Pt(spec.get("font_size", 11))
    counts = {"headings": 0, "tables": 0, "paragraphs": 0}
    if spec.get("title"):
        doc.add_heading(str(spec["title"]), level=0)
        counts["headings"] += 1
    if spec.get("subtitle"):
        p = doc.add_paragraph(str(spec["subtitle"]))
        p.runs[0].italic = True
        counts["paragraphs"] += 1
    for i, block in enumerate(spec["blocks"]):
        if not isinstance(block, dict):
            fail(f"block {i + 1} must be an object")
        if "heading" in block:
            doc.add_heading(str(block["heading"]), level=max(1, min(int(block.get("level", 1)), 4)))
            counts["headings"] += 1
        elif "paragraph" in block:
            p = doc.add_paragraph(str(block["paragraph"]))
            if block.get("bold"):
                for r in p.runs:
                    r.bold = True
            counts["paragraphs"] += 1
        elif "bullets" in block or "numbered" in block:
            style = "List Bullet" if "bullets" in block else "List Number"
            for item in block.get("bullets") or block.get("numbered") or []:
                doc.add_paragraph(str(item), style=style)
                counts["paragraphs"] += 1
        elif "table" in block:
            add_table(doc, block["table"])
            counts["tables"] += 1
        elif block.get("page_break"):
            doc.add_page_break()
        else:
            fail(f"block {i + 1} is none of heading, paragraph, bullets, numbered, table, page_break")
    doc.save(out)
    print(json.dumps({**counts, "out": out}))


if __name__ == "__main__":
    main()
