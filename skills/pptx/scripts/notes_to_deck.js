#!/usr/bin/env node
// Builds a .pptx deck from an outline: a title slide, then one slide per section with a
// title, bullets, an optional chart and speaker notes. The outline is Markdown (see
// ../SKILL.md) or JSON ({title, subtitle, slides: [{title, bullets, notes, chart}]}).
//
// Usage: node notes_to_deck.js OUTLINE(.md|.json) OUT.pptx [--slides N]
// Prints one JSON line: {"slides": N, "notes": N, "charts": N, "out": "..."}.

const fs = require('node:fs');
const path = require('node:path');
const PptxGenJS = require('pptxgenjs');

function fail(message) {
  process.stderr.write(`notes_to_deck: ${message}\n`);
  process.exit(1);
}

/** Parses "Chart (bar): EMEA=2.1, Americas=3.4" or "Chart: Q1=1; Q2=2". */
function parseChart(line) {
  const m = /^chart\s*(?:\((bar|column|line|pie)\))?\s*(?:"([^"]*)")?\s*:\s*(.+)$/i.exec(line.trim());
  if (!m) return undefined;
  const labels = [];
  const values = [];
  for (const part of m[3].split(/[,;]/)) {
    const kv = /^\s*(.+?)\s*[=:]\s*(-?[\d.,]+)\s*(%|[kKmM])?\s*$/.exec(part);
    if (!kv) continue;
    labels.push(kv[1]);
    values.push(Number(kv[2].replace(/,/g, '')));
  }
  if (labels.length === 0) return undefined;
  return { type: (m[1] || 'bar').toLowerCase(), title: m[2] || '', labels, values };
}

/** Markdown outline: `# Title`, text under it = subtitle, `## Slide`, `- bullet`, `Notes: …`, `Chart (bar): a=1, b=2`. */
function parseMarkdown(text) {
  const deck = { title: '', subtitle: '', slides: [] };
  let slide;
  let inNotes = false;
  for (const raw of text.replace(/\r\n?/g, '\n').split('\n')) {
    const line = raw.trimEnd();
    const h1 = /^#\s+(.+)$/.exec(line);
    const h2 = /^#{2,3}\s+(.+)$/.exec(line);
    if (h1 && !deck.title) {
      deck.title = h1[1].trim();
      slide = undefined;
      inNotes = false;
      continue;
    }
    if (h2 || h1) {
      slide = { title: (h2 || h1)[1].trim(), bullets: [], notes: '' };
      deck.slides.push(slide);
      inNotes = false;
      continue;
    }
    if (!line.trim()) continue;
    const notes = /^(?:notes?|speaker notes?)\s*:\s*(.*)$/i.exec(line.trim());
    if (slide && notes) {
      slide.notes = notes[1].trim();
      inNotes = true;
      continue;
    }
    const chart = slide ? parseChart(line) : undefined;
    if (chart) {
      slide.chart = chart;
      inNotes = false;
      continue;
    }
    const bullet = /^\s*(?:[-*+]|\d+[.)])\s+(.+)$/.exec(line);
    if (slide && inNotes && !bullet) {
      slide.notes = `${slide.notes} ${line.trim()}`.trim();
      continue;
    }
    if (slide && bullet) {
      if (inNotes) slide.notes = `${slide.notes}\n${bullet[1].trim()}`.trim();
      else slide.bullets.push(bullet[1].trim());
      continue;
    }
    if (slide) slide.bullets.push(line.trim());
    else if (deck.title) deck.subtitle = `${deck.subtitle} ${line.trim()}`.trim();
  }
  return deck;
}

function loadOutline(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    fail(`cannot read ${file}: ${err.message}`);
  }
  if (/\.json$/i.test(file) || text.trimStart().startsWith('{')) {
    try {
      return JSON.parse(text);
    } catch (err) {
      fail(`${file} is not valid JSON: ${err.message}`);
    }
  }
  return parseMarkdown(text);
}

function validate(deck) {
  if (!deck || typeof deck !== 'object') fail('the outline is empty');
  if (!Array.isArray(deck.slides) || deck.slides.length === 0) fail('the outline has no slides (## headings)');
  deck.title = String(deck.title || deck.slides[0].title || 'Untitled');
  for (const [i, s] of deck.slides.entries()) {
    if (!s || typeof s.title !== 'string' || !s.title.trim()) fail(`slide ${i + 1} has no title`);
    s.bullets = Array.isArray(s.bullets) ? s.bullets.map(String) : [];
    s.notes = typeof s.notes === 'string' ? s.notes : '';
    if (s.chart) {
      const c = s.chart;
      if (!Array.isArray(c.labels) || !Array.isArray(c.values) || c.labels.length !== c.values.length)
        fail(`slide ${i + 1}: a chart needs labels and values of the same length`);
      if (c.values.some((v) => typeof v !== 'number' || !Number.isFinite(v)))
        fail(`slide ${i + 1}: chart values must be numbers`);
    }
  }
  return deck;
}

const THEME = { dark: '1F2A44', accent: '2E7D6B', light: 'F4F6F8', text: '222222', muted: '5B6575' };

function build(deck, out) {
  const pptx = new PptxGenJS();
  pptx.layout = 'LAYOUT_WIDE'; // 13.33 x 7.5 in
  pptx.title = deck.title;
  pptx.defineSlideMaster({
    title: 'CONTENT',
    background: { color: 'FFFFFF' },
    objects: [
      { rect: { x: 0, y: 0, w: '100%', h: 0.12, fill: { color: THEME.accent } } },
      { text: { text: deck.title, options: { x: 0.5, y: 7.0, w: 8, h: 0.3, fontSize: 10, color: THEME.muted } } },
    ],
    slideNumber: { x: 12.3, y: 7.0, fontSize: 10, color: THEME.muted },
  });

  const title = pptx.addSlide();
  title.background = { color: THEME.dark };
  title.addText(deck.title, { x: 0.8, y: 2.4, w: 11.7, h: 1.4, fontSize: 40, bold: true, color: 'FFFFFF' });
  if (deck.subtitle) title.addText(deck.subtitle, { x: 0.8, y: 3.9, w: 11.7, h: 1.0, fontSize: 20, color: 'D6DCE5' });
  if (deck.notes) title.addNotes(String(deck.notes));
  else title.addNotes(`Introduce the deck: ${deck.title}.`);

  let charts = 0;
  let notes = 1;
  for (const s of deck.slides) {
    const slide = pptx.addSlide({ masterName: 'CONTENT' });
    slide.addText(s.title, { x: 0.5, y: 0.35, w: 12.3, h: 0.9, fontSize: 30, bold: true, color: THEME.dark });
    const bulletBox = s.chart ? { x: 0.5, y: 1.4, w: 5.6, h: 5.3 } : { x: 0.5, y: 1.4, w: 12.3, h: 5.3 };
    if (s.bullets.length > 0) {
      slide.addText(
        s.bullets.map((b) => ({ text: b, options: { bullet: true, breakLine: true } })),
        { ...bulletBox, fontSize: s.bullets.length > 6 ? 16 : 20, color: THEME.text, valign: 'top', paraSpaceAfter: 8 },
      );
    }
    if (s.chart) {
      const c = s.chart;
      const type =
        { bar: pptx.ChartType.bar, column: pptx.ChartType.bar, line: pptx.ChartType.line, pie: pptx.ChartType.pie }[
          c.type
        ] || pptx.ChartType.bar;
      slide.addChart(type, [{ name: c.title || s.title, labels: c.labels.map(String), values: c.values }], {
        x: s.bullets.length > 0 ? 6.4 : 1.5,
        y: 1.4,
        w: s.bullets.length > 0 ? 6.4 : 10.3,
        h: 5.3,
        barDir: c.type === 'bar' ? 'col' : undefined,
        chartColors: [THEME.accent, THEME.dark, '8AA29E', 'C9A227', 'B5473A', '6C7A89'],
        showLegend: c.type === 'pie',
        showValue: true,
        showTitle: Boolean(c.title),
        title: c.title || undefined,
        catAxisLabelFontSize: 12,
        valAxisLabelFontSize: 12,
      });
      charts += 1;
    }
    if (s.notes) {
      slide.addNotes(s.notes);
      notes += 1;
    }
  }
  return pptx.writeFile({ fileName: out }).then(() => ({ slides: deck.slides.length + 1, notes, charts }));
}

async function main() {
  const args = process.argv.slice(2);
  const slidesAt = args.indexOf('--slides');
  let want;
  if (slidesAt >= 0) {
    want = Number(args[slidesAt + 1]);
    if (!Number.isInteger(want) || want < 1) fail('--slides needs a whole number');
    args.splice(slidesAt, 2);
  }
  const [input, out] = args;
  if (!input || !out) fail('usage: node notes_to_deck.js OUTLINE(.md|.json) OUT.pptx [--slides N]');
  if (!/\.pptx$/i.test(out)) fail('the output file must end in .pptx');
  const deck = validate(loadOutline(input));
  // --slides N counts the title slide: N-1 content slides, the rest dropped.
  if (want !== undefined) {
    if (deck.slides.length < want - 1)
      fail(`the outline has ${deck.slides.length} sections, fewer than the ${want - 1} content slides asked for`);
    deck.slides = deck.slides.slice(0, Math.max(0, want - 1));
  }
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  const result = await build(deck, out);
  process.stdout.write(`${JSON.stringify({ ...result, out })}\n`);
}

main().catch((err) => fail(err?.stack ? err.stack : String(err)));
