#!/usr/bin/env python3
"""Builds a PDF from a JSON spec with reportlab (platypus): a title, headings, paragraphs,
bullet lists, tables with a styled header row and page breaks, with page numbers.

Usage: python3 build_pdf.py SPEC.json OUT.pdf
Prints one JSON line: {"pages": N, "out": "..."}.
The spec has the same blocks as the docx skill's (see ../SKILL.md).
"""
import json
import sys
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import cm
from reportlab.platypus import (
    ListFlowable,
    ListItem,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)


def fail(message):
    sys.stderr.write(f"build_pdf: {message}\n")
    sys.exit(1)


class Counting(SimpleDocTemplate):
    pages = 0

    def afterPage(self):
        Counting.pages = max(Counting.pages, self.page)


def footer(canvas, doc):
    canvas.saveState()
    canvas.setFont("Helvetica", 8)
    canvas.setFillColor(colors.grey)
    canvas.drawRightString(doc.pagesize[0] - 2 * cm, 1.2 * cm, f"{doc.page}")
    canvas.restoreState()


def main():
    if len(sys.argv) != 3:
        fail("usage: python3 build_pdf.py SPEC.json OUT.pdf")
    spec_path, out = sys.argv[1], sys.argv[2]
    if not out.lower().endswith(".pdf"):
        fail("the output file must end in .pdf")
    try:
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        fail(f"cannot read {spec_path}: {e.strerror}")
    except json.JSONDecodeError as e:
        fail(f"{spec_path} is not valid JSON: {e}")
    if not isinstance(spec, dict) or not isinstance(spec.get("blocks"), list):
        fail("the spec needs a list of blocks")

    styles = getSampleStyleSheet()
    story = []
    if spec.get("title"):
        story.append(Paragraph(escape(str(spec["title"])), styles["Title"]))
    if spec.get("subtitle"):
        story.append(Paragraph(f"<i>{escape(str(spec['subtitle']))}</i>", styles["Normal"]))
        story.append(Spacer(1, 0.4 * cm))
    for i, block in enumerate(spec["blocks"]):
        if not isinstance(block, dict):
            fail(f"block {i + 1} must be an object")
        if "heading" in block:
            level = max(1, min(int(block.get("level", 1)), 3))
            story.append(Paragraph(escape(str(block["heading"])), styles[f"Heading{level}"]))
        elif "paragraph" in block:
            text = escape(str(block["paragraph"]))
            story.append(Paragraph(f"<b>{text}</b>" if block.get("bold") else text, styles["BodyText"]))
        elif "bullets" in block or "numbered" in block:
            items = block.get("bullets") or block.get("numbered") or []
            story.append(
                ListFlowable(
                    [ListItem(Paragraph(escape(str(x)), styles["BodyText"])) for x in items],
                    bulletType="bullet" if "bullets" in block else "1",
                    leftIndent=14,
                )
            )
        elif "table" in block:
            t = block["table"]
            header = [str(h) for h in t.get("header") or []]
            rows = [["" if v is None else str(v) for v in r] for r in t.get("rows") or []]
            data = ([header] if header else []) + rows
            if not data:
                fail(f"block {i + 1}: a table needs a header or rows")
            cell = styles["BodyText"]
            wrapped = [[Paragraph(escape(v), cell) for v in r] for r in data]
            table = Table(wrapped, repeatRows=1 if header else 0, hAlign="LEFT")
            style = [
                ("GRID", (0, 0), (-1, -1), 0.5, colors.HexColor("#B8C0CC")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
            if header:
                style += [
                    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#1F2A44")),
                    ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
                ]
                wrapped[0] = [Paragraph(f'<font color="white"><b>{escape(v)}</b></font>', cell) for v in header]
                table = Table(wrapped, repeatRows=1, hAlign="LEFT")
            table.setStyle(TableStyle(style))
            story.append(table)
            story.append(Spacer(1, 0.3 * cm))
        elif block.get("page_break"):
            story.append(PageBreak())
        else:
            fail(f"block {i + 1} is none of heading, paragraph, bullets, numbered, table, page_break")

    size = LETTER if str(spec.get("page_size", "A4")).lower() == "letter" else A4
    doc = Counting(out, pagesize=size, leftMargin=2 * cm, rightMargin=2 * cm, topMargin=2 * cm, bottomMargin=2 * cm,
                   title=str(spec.get("title", "")))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    print(json.dumps({"pages": Counting.pages, "out": out}))


if __name__ == "__main__":
    main()
