#!/usr/bin/env python3
"""Turn rough meeting notes into a one-page brief, as .docx and .pdf.

Usage: python3 notes_to_brief.py <notes.md|txt> <out.docx> <out.pdf>

The notes are parsed loosely:
  * title    - the first "# heading", else the first short line (or a
               "Meeting:/Subject:/Topic:" line), else "Meeting brief";
  * metadata - "Date:", "Attendees:", "Location:", "Next meeting:" ... lines;
  * sections - markdown headings, "**Bold**" lines, "Label:" lines and
               underlined (setext) headings; bullets (-, *, +, 1., [ ]) and
               paragraphs inside them;
  * inline markers anywhere - "Decision: ...", "Risk: ...", "TODO: ...",
               "Action: ..." and unchecked "[ ]" boxes go to the matching list.

The brief has a title, a date line, Summary, Decisions, Risks, any other
sections the notes have, and Action items (a table with owner / action / due
when those can be detected, else a bullet list). Lists are trimmed with
"...and N more" until the PDF fits on one A4 page; the .docx gets the same
content with comparable fonts and margins.

On success a one-line JSON summary is printed to stdout. Empty or unreadable
input: a short message to stderr and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

try:
    from docx import Document
    from docx.enum.table import WD_TABLE_ALIGNMENT
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn
    from docx.shared import Cm, Pt, RGBColor
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_LEFT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.stderr.write(f"notes_to_brief: error: missing Python package ({exc.name}); needs python-docx and reportlab\n")
    sys.exit(3)

PROG = "notes_to_brief"
ELLIPSIS = "\u2026"

SECTION_KINDS = {
    "summary": ("summary", "overview", "context", "background", "tl;dr", "tldr", "purpose", "goal", "goals",
                "objective", "objectives", "highlights", "key points", "recap"),
    "decisions": ("decision", "decisions", "decided", "agreed", "agreements", "outcome", "outcomes",
                  "resolution", "resolutions", "conclusions"),
    "risks": ("risk", "risks", "concern", "concerns", "blocker", "blockers", "issues", "risks and issues",
              "risks & issues", "watch outs", "watch-outs"),
    "actions": ("action items", "action item", "actions", "action", "todo", "todos", "to do", "to-do",
                "next steps", "follow ups", "follow-ups", "follow up", "follow-up", "followup", "followups", "tasks",
                "owners", "ai", "action points"),
}
# Words that mark a longer heading ("Key decisions", "Risks and mitigations", "Action items & owners").
SECTION_HINTS = {
    "summary": ("summary", "overview", "context", "background", "tldr", "recap"),
    "decisions": ("decision", "decisions", "decided", "agreed", "outcomes"),
    "risks": ("risk", "risks", "concerns", "blockers", "issues"),
    "actions": ("actions", "todo", "todos", "tasks", "action items", "next steps", "follow-ups"),
}
CANONICAL_TITLES = {"summary": "Summary", "decisions": "Decisions", "risks": "Risks", "actions": "Action items"}
META_KEYS = ("date", "when", "time", "attendees", "attendee", "participants", "present", "people", "who",
             "location", "where", "room", "facilitator", "chair", "host", "organiser", "organizer",
             "note taker", "notes by", "scribe", "absent", "apologies", "regrets", "project", "team",
             "meeting", "subject", "topic", "title", "duration", "call")
TITLE_META = ("meeting", "subject", "topic", "title")
DATE_META = ("date", "when")
PEOPLE_META = ("attendees", "attendee", "participants", "present", "people", "who")

MONTHS = (r"(?:january|february|march|april|may|june|july|august|september|october|november|december"
          r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?")
WEEKDAYS = r"(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?\.?"
DATE_RX = (
    rf"(?:\d{{4}}-\d{{1,2}}-\d{{1,2}}"
    rf"|\d{{1,2}}[/.]\d{{1,2}}(?:[/.]\d{{2,4}})?"
    rf"|(?:{WEEKDAYS},?\s+)?{MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|(?:{WEEKDAYS},?\s+)?\d{{1,2}}(?:st|nd|rd|th)?\s+{MONTHS}(?:\s+\d{{4}})?"
    rf"|{WEEKDAYS}"
    rf"|eod|eow|eom|end of (?:the )?(?:day|week|month|sprint|quarter)|tomorrow|today|asap"
    rf"|next (?:week|month|sprint|{WEEKDAYS})|this week|q[1-4](?:\s+\d{{4}})?|w\d{{1,2}})"
)
DUE_PATTERNS = [
    re.compile(rf"[\s,;(\[]*(?:--|\u2014|\u2013|-|\|)?\s*\(?\s*\b(?:due|deadline|by|before|until|eta|target)"
               rf"\s*(?:date)?\s*[:\-]?\s*(?:on\s+|by\s+)?(?P<due>{DATE_RX})\s*\)?\s*\]?\.?\s*$", re.I),
    re.compile(rf"\s*[(\[]\s*(?P<due>{DATE_RX})\s*[)\]]\.?\s*$", re.I),
    re.compile(rf"\s+(?:--|\u2014|\u2013|-)\s*(?P<due>{DATE_RX})\.?\s*$", re.I),
]
NAME = r"(?:@?[A-Z][\w'.\-]*(?:\s[A-Z][\w'.\-]*){0,2})"
OWNERS = rf"(?P<owner>{NAME}(?:\s*(?:,|&|\+|/|\band\b)\s*{NAME})*)"
OWNER_PREFIX = [
    re.compile(rf"^\[{OWNERS}\]\s*[:\-\u2013\u2014]?\s*(?P<rest>.+)$"),
    re.compile(rf"^{OWNERS}\s*(?::|\s-{{1,2}}\s|\s\u2013\s|\s\u2014\s)\s*(?P<rest>.+)$"),
    re.compile(rf"^{OWNERS}\s+(?:to|will|should|must|needs to|is going to)\s+(?P<rest>.+)$"),
    re.compile(r"^@(?P<owner>[\w.\-]+)\s+(?P<rest>.+)$"),
]
OWNER_SUFFIX = [
    re.compile(rf"^(?P<rest>.+?)\s*[(\[]\s*(?:[Oo]wner:?\s*)?{OWNERS}\s*[)\]]\s*$"),
    re.compile(rf"^(?P<rest>.+?)\s*(?:--|\u2014|\u2013|-|\||;|,)\s*(?:owner|assignee|assigned to|who)\s*:?\s*"
               rf"{OWNERS}\s*$", re.I),
    re.compile(r"^(?P<rest>.+?)\s+@(?P<owner>[\w.\-]+)\s*$"),
]
NOT_OWNERS = {"the", "we", "i", "a", "an", "all", "everyone", "team", "todo", "action", "note", "notes", "next",
              "please", "decision", "risk", "ai", "tbd", "this", "that", "it", "if", "when", "ask", "check",
              "make", "send", "set", "update", "review", "write", "draft", "fix", "call", "email", "plan",
              "prepare", "schedule", "book", "share", "follow", "finish", "confirm", "decide", "create", "add"}

INLINE_MARKER = re.compile(
    r"^(decision|decided|agreed|risk|concern|blocker|todo|to-?do|action|ai|follow[- ]?up)(?:\s*:|\s+-\s)\s*(.+)$", re.I)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
BOLD_LINE = re.compile(r"^\s*(?:\*\*|__)(.+?)(?:\*\*|__)\s*:?\s*$")
LABEL_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 /&'()\-.;]{0,40}?)\s*:\s*(.*)$")
BULLET = re.compile(r"^(\s*)(?:[-*+\u2022\u25aa\u2023\u2013>]|\d{1,3}[.)]|[a-zA-Z][.)](?=\s))\s+(.*)$")
CHECKBOX = re.compile(r"^\[( |x|X)\]\s*(.*)$")
SETEXT = re.compile(r"^\s*(=+|-+)\s*$")
RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")


@dataclass
class Section:
    title: str
    kind: str  # summary / decisions / risks / actions / other
    items: list = field(default_factory=list)
    paragraphs: list = field(default_factory=list)


@dataclass
class Notes:
    title: str = ""
    meta: dict = field(default_factory=dict)  # key (lower) -> (label, value)
    preamble: list = field(default_factory=list)  # paragraphs before any section
    sections: list = field(default_factory=list)


def fail(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.exit(2)


def clean_inline(text: str) -> str:
    """Strip the markdown that matters for plain output and tidy punctuation."""
    t = text.strip()
    t = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", t)
    t = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", t)
    t = re.sub(r"(\*\*|__)(.+?)\1", r"\2", t)
    t = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", t)
    t = re.sub(r"(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?![\w_])", r"\1", t)
    t = re.sub(r"`([^`]*)`", r"\1", t)
    t = re.sub(r"~~(.+?)~~", r"\1", t)
    t = re.sub(r"\s+--\s+", " \u2013 ", t)
    t = re.sub(r"\s+", " ", t)
    return t.strip()


def kind_of(label: str) -> str | None:
    key = re.sub(r"[^a-z0-9;&\- ]+", "", label.lower()).strip()
    key = re.sub(r"\s+", " ", key)
    for kind, names in SECTION_KINDS.items():
        if key in names:
            return kind
    words = key.split()
    if not words or len(words) > 5:
        return None
    for kind, hints in SECTION_HINTS.items():
        if words[0] in hints or words[-1] in hints or " ".join(words[:2]) in hints:
            return kind
    return None


def meta_key(label: str) -> str | None:
    key = re.sub(r"\s+", " ", label.lower()).strip()
    if key in META_KEYS:
        return key
    if key.startswith("next ") and len(key.split()) <= 3:  # next meeting / next check-in / next sync
        return key
    return None


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,;:-\u2013") + ELLIPSIS


def parse(text: str) -> Notes:
    notes = Notes()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ").split("\n")
    # Drop YAML front matter but keep its title/date.
    if lines and lines[0].strip() == "---":
        for end in range(1, min(len(lines), 60)):
            if lines[end].strip() in ("---", "..."):
                for fm in lines[1:end]:
                    m = LABEL_LINE.match(fm)
                    if m and m.group(2).strip():
                        k = meta_key(m.group(1)) or m.group(1).lower()
                        notes.meta.setdefault(k, (m.group(1).strip().title(), m.group(2).strip().strip("\"'")))
                lines = lines[end + 1:]
                break

    extra = {"decisions": [], "risks": [], "actions": []}
    current: Section | None = None
    para: list[str] = []
    last_item: list | None = None  # [list, index] of the bullet being continued

    def flush_para() -> None:
        nonlocal para
        if para:
            joined = clean_inline(" ".join(para))
            if joined:
                (current.paragraphs if current else notes.preamble).append(joined)
        para = []

    def start_section(label: str) -> None:
        nonlocal current, last_item
        flush_para()
        label = clean_inline(label).rstrip(":").strip()
        kind = kind_of(label) or "other"
        current = Section(title=label, kind=kind)
        notes.sections.append(current)
        last_item = None

    def add_item(text: str) -> None:
        nonlocal last_item
        item = clean_inline(text)
        if not item:
            return
        # Inline markers route the item to a canonical list whatever the section.
        m = INLINE_MARKER.match(item)
        if m:
            kind = kind_of(m.group(1))
            if kind in extra and not (current and current.kind == kind):
                extra[kind].append(m.group(2).strip())
                last_item = [extra[kind], len(extra[kind]) - 1]
                return
            if current and current.kind == kind:
                item = m.group(2).strip()
        if current is None:  # bullets before any heading
            start_section("Notes")
        target = current.items
        target.append(item)
        last_item = [target, len(target) - 1]

    i = 0
    while i < len(lines):
        raw = lines[i]
        line = raw.rstrip()
        stripped = line.strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        i += 1

        if not stripped:
            flush_para()
            last_item = None
            continue
        if RULE.match(stripped) and not para:
            flush_para()
            continue

        # Title candidates.
        h = HEADING.match(line)
        if h:
            label = clean_inline(h.group(2))
            if not notes.title and (len(h.group(1)) == 1 or (not notes.sections and not notes.preamble and not para)) \
                    and not kind_of(label):
                flush_para()
                notes.title = label
                continue
            start_section(label)
            continue
        if para == [] and SETEXT.match(nxt) and not BULLET.match(line) and len(stripped) <= 80:
            label = clean_inline(stripped)
            i += 1
            if not notes.title and nxt.strip().startswith("=") and not kind_of(label):
                flush_para()
                notes.title = label
            else:
                start_section(label)
            continue
        b = BOLD_LINE.match(line)
        if b and len(b.group(1)) <= 60:
            label = clean_inline(b.group(1))
            if not notes.title and not notes.sections and not notes.preamble and not para and not kind_of(label):
                notes.title = label
            else:
                start_section(label)
            continue

        bm = BULLET.match(line)
        if bm:
            flush_para()
            body = bm.group(2).strip()
            cb = CHECKBOX.match(body)
            if cb:
                body = cb.group(2)
                if cb.group(1) == " " and not (current and current.kind == "actions"):
                    extra["actions"].append(clean_inline(body))
                    last_item = [extra["actions"], len(extra["actions"]) - 1]
                    continue
            add_item(body)
            continue

        lm = LABEL_LINE.match(line)
        if lm and not re.match(r"^\s*https?$", lm.group(1), re.I):
            label, rest = lm.group(1).strip(), lm.group(2).strip()
            mk = meta_key(label)
            if mk and rest:
                flush_para()
                notes.meta.setdefault(mk, (label, clean_inline(rest)))
                last_item = None
                continue
            if not rest and len(label) <= 40:
                start_section(label)
                continue
            kind = kind_of(label)
            if kind and kind != "summary" and len(label.split()) <= 3:
                flush_para()
                if current and current.kind == kind:
                    current.items.append(clean_inline(rest))
                    last_item = [current.items, len(current.items) - 1]
                else:
                    extra[kind].append(clean_inline(rest))
                    last_item = [extra[kind], len(extra[kind]) - 1]
                continue
            if kind == "summary" and rest:
                flush_para()
                notes.sections.append(Section(title=label, kind="summary", paragraphs=[clean_inline(rest)]))
                continue

        # Continuation of a bullet (indented, or directly following it).
        if last_item is not None and (raw.startswith((" ", "\t")) or not para):
            lst, idx = last_item
            lst[idx] = clean_inline(lst[idx] + " " + stripped)
            continue

        if not notes.title and not notes.sections and not notes.preamble and not para:
            candidate = clean_inline(stripped)
            standalone = not nxt.strip() or bool(BULLET.match(nxt) or HEADING.match(nxt) or LABEL_LINE.match(nxt))
            if standalone and len(candidate) <= 90 and not candidate.endswith((".", ",", ";")):
                notes.title = candidate.rstrip(":")
                continue
        para.append(stripped)
    flush_para()

    # Merge inline-marked items into canonical sections.
    for kind, items in extra.items():
        if not items:
            continue
        sec = next((s for s in notes.sections if s.kind == kind), None)
        if sec is None:
            sec = Section(title=CANONICAL_TITLES[kind], kind=kind)
            notes.sections.append(sec)
        sec.items.extend(items)

    # Merge duplicate kinds (e.g. two "Decisions" headings).
    merged: list[Section] = []
    for sec in notes.sections:
        twin = next((s for s in merged if s.kind == sec.kind and s.kind != "other"), None)
        if twin is None:
            twin = next((s for s in merged if s.kind == "other" and s.title.lower() == sec.title.lower()), None)
        if twin is not None:
            twin.items.extend(sec.items)
            twin.paragraphs.extend(sec.paragraphs)
        else:
            merged.append(sec)
    notes.sections = [s for s in merged if s.items or s.paragraphs]

    if not notes.title:
        for key in TITLE_META:
            if key in notes.meta:
                notes.title = notes.meta.pop(key)[1]
                break
    if not notes.title:
        notes.title = "Meeting brief"
    return notes


# ---------------------------------------------------------------------------
# Action items


def split_due(text: str):
    for rx in DUE_PATTERNS:
        m = rx.search(text)
        if m and m.start() > 0:
            return text[: m.start()].rstrip(" ,;:-\u2013\u2014|("), m.group("due").strip()
    return text, ""


def plausible_owner(owner: str) -> bool:
    names = re.split(r"\s*(?:,|&|\+|/|\band\b)\s*", owner)
    for n in names:
        first = n.strip().lstrip("@").split(" ")[0].lower()
        if not first or first in NOT_OWNERS or len(n) > 40:
            return False
    return True


def parse_action(item: str):
    text = item.strip()
    m = re.match(r"^owner\s*:\s*(?P<owner>[^;,\-\u2013\u2014]+?)\s*[;,\-\u2013\u2014]\s*(?P<rest>.+)$", text, re.I)
    owner = ""
    if m:
        owner, text = m.group("owner").strip(), m.group("rest").strip()
    body, due = split_due(text)
    if not owner:
        for rx in OWNER_PREFIX:
            m = rx.match(body)
            if m and plausible_owner(m.group("owner")):
                owner, body = m.group("owner"), m.group("rest")
                break
    if not owner:
        for rx in OWNER_SUFFIX:
            m = rx.match(body)
            if m and plausible_owner(m.group("owner")):
                owner, body = m.group("owner"), m.group("rest")
                break
    if not due:
        body, due = split_due(body)
    owner = re.sub(r"\s*\+\s*", " + ", owner.replace("@", "")).strip()
    owner = owner[:1].upper() + owner[1:]
    body = body.strip().rstrip(" ,;:-\u2013\u2014")
    if body:
        body = body[0].upper() + body[1:]
    return {"owner": owner, "action": body or item, "due": due}


# ---------------------------------------------------------------------------
# Brief content (shared by the docx and pdf writers)


@dataclass
class Brief:
    title: str
    date_line: str
    people_line: str
    summary: list  # paragraphs
    blocks: list  # (heading, kind, bullets|rows, more_count)
    footer: str


def build_brief(notes: Notes, limits: dict) -> Brief:
    meta = dict(notes.meta)
    date_val = next((meta.pop(k)[1] for k in DATE_META if k in meta), "")
    if not date_val:
        m = re.search(r"\b\d{4}-\d{2}-\d{2}\b", notes.title + " " + " ".join(notes.preamble[:3]))
        date_val = m.group(0) if m else ""
    date_line = f"Meeting date: {date_val}" if date_val else f"Prepared {dt.date.today().isoformat()}"
    people = next((meta.pop(k) for k in PEOPLE_META if k in meta), None)
    people_line = truncate(f"{people[0].strip().title()}: {people[1]}", limits["people"]) if people else ""
    for k in TITLE_META:
        meta.pop(k, None)
    footer_bits = [f"{label}: {value}" for label, value in meta.values()]
    footer = truncate(" \u00b7 ".join(footer_bits), limits["footer"]) if footer_bits else ""

    by_kind = {s.kind: s for s in notes.sections if s.kind != "other"}
    others = [s for s in notes.sections if s.kind == "other"]

    summary_paras = []
    if "summary" in by_kind:
        s = by_kind["summary"]
        summary_paras = s.paragraphs + ([" ".join(s.items)] if s.items and not s.paragraphs else [])
    if not summary_paras:
        summary_paras = list(notes.preamble)
    summary_from = None
    if not summary_paras:
        summary_from = next((s for s in notes.sections if s.paragraphs and s.kind != "actions"), None)
        summary_paras = summary_from.paragraphs[:1] if summary_from else []
    if not summary_paras:
        counts = []
        for kind, word in (("decisions", "decision"), ("risks", "risk"), ("actions", "action item")):
            n = len(by_kind[kind].items) if kind in by_kind else 0
            if n:
                counts.append(f"{n} {word}{'' if n == 1 else 's'}")
        if counts:
            lead = ", ".join(counts[:-1]) + (" and " if len(counts) > 1 else "") + counts[-1]
            summary_paras = [f"The notes record {lead}."]
            if "decisions" in by_kind:
                summary_paras[0] += f" Key decision: {by_kind['decisions'].items[0].rstrip('.')}."
    summary_text = truncate(" ".join(summary_paras), limits["summary"]) if summary_paras else ""
    summary_text = summary_text[:1].upper() + summary_text[1:]

    def paragraphs_of(sec: Section):
        # The paragraph already used as the summary is not repeated.
        return sec.paragraphs[1:] if sec is summary_from else sec.paragraphs

    def bullets_of(sec: Section, cap: int):
        items = list(sec.items)
        paragraphs = paragraphs_of(sec)
        if not items:
            items = paragraphs
        elif paragraphs:
            items = paragraphs[:1] + items
        shown = [truncate(x[:1].upper() + x[1:], limits["item"]) for x in items[:cap]]
        return shown, max(0, len(items) - cap)

    others = [s for s in others if s.items or paragraphs_of(s)]
    blocks = []
    for kind in ("decisions", "risks"):
        if kind in by_kind and (by_kind[kind].items or paragraphs_of(by_kind[kind])):
            shown, more = bullets_of(by_kind[kind], limits[kind])
            blocks.append((CANONICAL_TITLES[kind], "list", shown, more))
    for sec in others[: limits["other_sections"]]:
        shown, more = bullets_of(sec, limits["other"])
        blocks.append((truncate(sec.title, 60), "list", shown, more))
    if len(others) > limits["other_sections"]:
        rest = others[limits["other_sections"]:]
        blocks.append(("Other notes", "list", [truncate(f"{s.title}: {len(s.items) + len(s.paragraphs)} note(s)", 80)
                                                for s in rest[:2]], max(0, len(rest) - 2)))
    if "actions" in by_kind:
        sec = by_kind["actions"]
        items = sec.items or sec.paragraphs
        parsed = [parse_action(x) for x in items]
        cap = limits["actions"]
        more = max(0, len(parsed) - cap)
        parsed = parsed[:cap]
        if any(p["owner"] or p["due"] for p in parsed):
            rows = [{"owner": truncate(p["owner"], 30) or "\u2014", "action": truncate(p["action"], limits["item"]),
                     "due": truncate(p["due"], 24) or "\u2014"} for p in parsed]
            blocks.append(("Action items", "table", rows, more))
        else:
            blocks.append(("Action items", "list", [truncate(x, limits["item"]) for x in items[:cap]], more))

    return Brief(title=truncate(notes.title, 90), date_line=date_line, people_line=people_line,
                 summary=[summary_text] if summary_text else [], blocks=blocks, footer=footer)


LIMIT_LEVELS = [
    {"summary": 700, "item": 200, "decisions": 8, "risks": 6, "actions": 10, "other": 5, "other_sections": 3,
     "people": 220, "footer": 200},
    {"summary": 550, "item": 160, "decisions": 6, "risks": 5, "actions": 8, "other": 4, "other_sections": 3,
     "people": 180, "footer": 160},
    {"summary": 420, "item": 130, "decisions": 5, "risks": 4, "actions": 7, "other": 3, "other_sections": 2,
     "people": 150, "footer": 120},
    {"summary": 320, "item": 110, "decisions": 4, "risks": 3, "actions": 6, "other": 2, "other_sections": 1,
     "people": 120, "footer": 100},
    {"summary": 240, "item": 90, "decisions": 3, "risks": 3, "actions": 5, "other": 2, "other_sections": 0,
     "people": 100, "footer": 80},
    {"summary": 160, "item": 70, "decisions": 2, "risks": 2, "actions": 4, "other": 1, "other_sections": 0,
     "people": 80, "footer": 60},
]


def more_text(n: int) -> str:
    return f"{ELLIPSIS}and {n} more"


# ---------------------------------------------------------------------------
# PDF (reportlab)


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


def render_pdf(brief: Brief, fonts, scale: float = 1.0) -> tuple[bytes, int]:
    regular, bold = fonts
    builtin = regular == "Helvetica"
    base = 10 * scale
    st = {
        "title": ParagraphStyle("t", fontName=bold, fontSize=20 * scale, leading=24 * scale, spaceAfter=4,
                                textColor=colors.HexColor("#1F3864")),
        "meta": ParagraphStyle("m", fontName=regular, fontSize=9 * scale, leading=12 * scale,
                               textColor=colors.HexColor("#555555")),
        "h2": ParagraphStyle("h", fontName=bold, fontSize=12.5 * scale, leading=15 * scale, spaceBefore=9 * scale,
                             spaceAfter=3 * scale, textColor=colors.HexColor("#2E74B5")),
        "body": ParagraphStyle("b", fontName=regular, fontSize=base, leading=base * 1.32, alignment=TA_LEFT),
        "bullet": ParagraphStyle("l", fontName=regular, bulletFontName=regular, fontSize=base, leading=base * 1.3,
                                 leftIndent=14, bulletIndent=4, spaceAfter=1.5 * scale),
        "more": ParagraphStyle("x", fontName=regular, fontSize=base * 0.92, leading=base * 1.25, leftIndent=14,
                               textColor=colors.HexColor("#666666")),
        "cell": ParagraphStyle("c", fontName=regular, fontSize=base * 0.95, leading=base * 1.22),
        "cellh": ParagraphStyle("ch", fontName=bold, fontSize=base * 0.95, leading=base * 1.22,
                                textColor=colors.white),
    }
    story = [Paragraph(pdf_safe(brief.title, builtin), st["title"]),
             Paragraph(pdf_safe(brief.date_line, builtin), st["meta"])]
    if brief.people_line:
        story.append(Paragraph(pdf_safe(brief.people_line, builtin), st["meta"]))
    if brief.summary:
        story.append(Paragraph("Summary", st["h2"]))
        for p in brief.summary:
            story.append(Paragraph(pdf_safe(p, builtin), st["body"]))
    width = A4[0] - 36 * mm
    for heading, kind, content, more in brief.blocks:
        head = Paragraph(pdf_safe(heading, builtin), st["h2"])
        if kind == "table":
            data = [[Paragraph("Owner", st["cellh"]), Paragraph("Action", st["cellh"]), Paragraph("Due", st["cellh"])]]
            for row in content:
                data.append([Paragraph(pdf_safe(row[k], builtin), st["cell"]) for k in ("owner", "action", "due")])
            table = Table(data, colWidths=[width * 0.2, width * 0.6, width * 0.2], repeatRows=1)
            table.setStyle(TableStyle([
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#2E74B5")),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#EEF3FA")]),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#B4C6E7")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 2.5 * scale),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5 * scale),
            ]))
            story.append(KeepTogether([head, table]))
        else:
            first = [head]
            rest = []
            for j, item in enumerate(content):
                para = Paragraph(pdf_safe(item, builtin), st["bullet"], bulletText="\u2022")
                (first if j == 0 else rest).append(para)
            story.append(KeepTogether(first))
            story.extend(rest)
        if more:
            story.append(Paragraph(pdf_safe(more_text(more), builtin), st["more"]))
    if brief.footer:
        story.append(Spacer(1, 8 * scale))
        story.append(Paragraph(pdf_safe(brief.footer, builtin), st["meta"]))

    pages = {"n": 0}

    def count(canvas, _doc):
        pages["n"] += 1

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=16 * mm, title=brief.title, author="Handoff", subject="Meeting brief",
                            initialFontName=regular)
    doc.build(story, onFirstPage=count, onLaterPages=count)
    return buf.getvalue(), pages["n"]


# ---------------------------------------------------------------------------
# DOCX (python-docx)


def set_cell_background(cell, hex_color: str) -> None:
    tc_pr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), hex_color)
    tc_pr.append(shd)


def render_docx(brief: Brief, path: str, scale: float = 1.0) -> None:
    doc = Document()
    sec = doc.sections[0]
    sec.page_width, sec.page_height = Cm(21.0), Cm(29.7)
    sec.left_margin = sec.right_margin = Cm(1.8)
    sec.top_margin = sec.bottom_margin = Cm(1.6)

    styles = doc.styles
    normal = styles["Normal"]
    normal.font.name = "Calibri"
    normal.font.size = Pt(10 * scale)
    normal.paragraph_format.space_after = Pt(2)
    title_style = styles["Title"]
    title_style.font.size = Pt(20 * scale)
    title_style.paragraph_format.space_after = Pt(2)
    h2 = styles["Heading 2"]
    h2.font.size = Pt(12.5 * scale)
    h2.paragraph_format.space_before = Pt(9 * scale)
    h2.paragraph_format.space_after = Pt(3 * scale)
    bullet_style = styles["List Bullet"]
    bullet_style.font.size = Pt(10 * scale)
    bullet_style.paragraph_format.space_after = Pt(1.5)

    doc.core_properties.title = brief.title
    doc.core_properties.subject = "Meeting brief"
    doc.core_properties.author = "Handoff"

    doc.add_paragraph(brief.title, style="Title")
    for line in (brief.date_line, brief.people_line):
        if line:
            p = doc.add_paragraph()
            run = p.add_run(line)
            run.font.size = Pt(9 * scale)
            run.font.color.rgb = RGBColor(0x55, 0x55, 0x55)
            p.paragraph_format.space_after = Pt(0)
    if brief.summary:
        doc.add_paragraph("Summary", style="Heading 2")
        for text in brief.summary:
            doc.add_paragraph(text)
    for heading, kind, content, more in brief.blocks:
        hp = doc.add_paragraph(heading, style="Heading 2")
        hp.paragraph_format.keep_with_next = True
        if kind == "table":
            table = doc.add_table(rows=1, cols=3)
            try:
                table.style = styles["Table Grid"]
            except KeyError:
                pass
            table.alignment = WD_TABLE_ALIGNMENT.LEFT
            table.autofit = False
            widths = (Cm(3.4), Cm(10.4), Cm(3.6))
            for column, w in zip(table.columns, widths):
                column.width = w  # <w:gridCol>, which LibreOffice uses
            for cell, label, w in zip(table.rows[0].cells, ("Owner", "Action", "Due"), widths):
                cell.text = ""
                run = cell.paragraphs[0].add_run(label)
                run.bold = True
                run.font.color.rgb = RGBColor(0xFF, 0xFF, 0xFF)
                set_cell_background(cell, "2E74B5")
                cell.width = w
            for n, row in enumerate(content):
                cells = table.add_row().cells
                for cell, key, w in zip(cells, ("owner", "action", "due"), widths):
                    cell.text = row[key]
                    cell.width = w
                    cell.paragraphs[0].paragraph_format.space_after = Pt(0)
                    if n % 2 == 1:
                        set_cell_background(cell, "EEF3FA")
        else:
            for item in content:
                doc.add_paragraph(item, style="List Bullet")
        if more:
            p = doc.add_paragraph()
            run = p.add_run(more_text(more))
            run.italic = True
            run.font.color.rgb = RGBColor(0x66, 0x66, 0x66)
    if brief.footer:
        p = doc.add_paragraph()
        p.paragraph_format.space_before = Pt(8)
        run = p.add_run(brief.footer)
        run.font.size = Pt(9 * scale)
        run.font.color.rgb = RGBColor(0x55, 0x55, 0x55)
    doc.save(path)


# ---------------------------------------------------------------------------


def main(argv) -> int:
    if len(argv) != 4 or argv[1] in ("-h", "--help"):
        sys.stderr.write(f"usage: python3 {os.path.basename(argv[0])} <notes.md|txt> <out.docx> <out.pdf>\n")
        return 2
    src, out_docx, out_pdf = argv[1:4]
    try:
        with open(src, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        fail(f"cannot read {src}: {exc.strerror or exc}")
    if b"\x00" in raw[:4096]:
        fail(f"{src} looks like a binary file, expected plain-text or markdown notes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        fail(f"{src} is empty; nothing to summarise")

    notes = parse(text)
    if not notes.sections and not notes.preamble and not notes.meta:
        # Only a title line: still make a (short) brief from it.
        notes.preamble = [notes.title]

    fonts = pdf_fonts()
    chosen = None
    for level, limits in enumerate(LIMIT_LEVELS):
        brief = build_brief(notes, limits)
        pdf_bytes, pages = render_pdf(brief, fonts)
        chosen = (brief, pdf_bytes, pages, level, 1.0)
        if pages <= 1:
            break
    if chosen[2] > 1:
        for scale in (0.9, 0.8):
            pdf_bytes, pages = render_pdf(chosen[0], fonts, scale)
            chosen = (chosen[0], pdf_bytes, pages, chosen[3], scale)
            if pages <= 1:
                break
    brief, pdf_bytes, pages, level, scale = chosen
    if pages > 1:
        sys.stderr.write(f"{PROG}: warning: the brief still needs {pages} pages\n")

    for out in (out_docx, out_pdf):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    try:
        with open(out_pdf, "wb") as fh:
            fh.write(pdf_bytes)
        render_docx(brief, out_docx, scale)
    except OSError as exc:
        fail(f"cannot write output: {exc.strerror or exc}")

    counts = {}
    for heading, kind, content, more in brief.blocks:
        counts[heading] = len(content) + more
    actions = next((b for b in brief.blocks if b[0] == "Action items"), None)
    summary = {
        "title": brief.title,
        "sections": ["Summary"] * bool(brief.summary) + [b[0] for b in brief.blocks],
        "decisions": counts.get("Decisions", 0),
        "risks": counts.get("Risks", 0),
        "action_items": counts.get("Action items", 0),
        "action_table": bool(actions and actions[1] == "table"),
        "trimmed": level > 0 or scale < 1.0 or any(block[3] for block in brief.blocks),
        "pages": pages,
        "docx": out_docx,
        "pdf": out_pdf,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
