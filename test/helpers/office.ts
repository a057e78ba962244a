/**
 * Helpers for tests that check office deliverables by opening them: xlsx cells,
 * formulas and charts, formula results recalculated by LibreOffice, docx text,
 * and PDF page count and text (poppler).
 */
import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, extname, join, posix } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import ExcelJS from 'exceljs';

const run = promisify(execFile);

export interface XlsxChart {
  /** Plot type element(s) of the chart part, e.g. `barChart` (`barChart+lineChart` for a combo chart). */
  type: string;
  /** `col` or `bar` for bar charts. */
  barDir?: string;
  title?: string;
  /** Every cell reference (`<c:f>`) used by the chart's series: titles, categories and values. */
  seriesRefs: string[];
  /** The worksheet the chart is drawn on, when it can be resolved. */
  sheet?: string;
  /** Path of the chart part inside the package, e.g. `xl/charts/chart1.xml`. */
  part: string;
}

export interface XlsxContent {
  sheets: string[];
  /** sheet -> cell address -> formula, without the leading `=`. */
  formulas: Record<string, Record<string, string>>;
  charts: XlsxChart[];
}

// ---------------------------------------------------------------------------
// Zip (enough of it for office files: stored and deflated entries, no zip64)

/** Reads the entries of a zip archive into memory. */
export function unzip(buf: Buffer): Map<string, Buffer> {
  const eocdSig = 0x06054b50;
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === eocdSig) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip file (no end of central directory record)');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = buf.readUInt16LE(p + 10);
    const compressedSize = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (compressedSize === 0xffffffff || localOffset === 0xffffffff)
      throw new Error('zip64 archives are not supported');
    if (buf.readUInt32LE(localOffset) !== 0x04034b50) throw new Error(`corrupt zip local header for ${name}`);
    const start = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    const data = buf.subarray(start, start + compressedSize);
    if (method === 0) entries.set(name, Buffer.from(data));
    else if (method === 8) entries.set(name, inflateRawSync(data));
    else throw new Error(`unsupported zip compression method ${method} for ${name}`);
  }
  return entries;
}

/** Writes entries into a new zip archive (deflated, no zip64). */
export function zip(entries: Map<string, Buffer>): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const nameBuf = Buffer.from(name, 'utf8');
    const packed = deflateRawSync(data);
    const crc = crc32(data) >>> 0;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    const dir = Buffer.alloc(46);
    dir.writeUInt32LE(0x02014b50, 0);
    dir.writeUInt16LE(20, 4);
    dir.writeUInt16LE(20, 6);
    dir.writeUInt16LE(0x0800, 8);
    dir.writeUInt16LE(8, 10);
    dir.writeUInt32LE(crc, 16);
    dir.writeUInt32LE(packed.length, 20);
    dir.writeUInt32LE(data.length, 24);
    dir.writeUInt16LE(nameBuf.length, 28);
    dir.writeUInt32LE(offset, 42);
    locals.push(local, nameBuf, packed);
    central.push(dir, nameBuf);
    offset += local.length + nameBuf.length + packed.length;
  }
  const dirSize = central.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.size, 8);
  end.writeUInt16LE(entries.size, 10);
  end.writeUInt32LE(dirSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...central, end]);
}

function entryText(entries: Map<string, Buffer>, name: string): string | undefined {
  return entries.get(name)?.toString('utf8');
}

// ---------------------------------------------------------------------------
// XML bits (regex-level: office parts are machine-written and predictable)

const P = '(?:[\\w.-]+:)?'; // optional namespace prefix

export function decodeXml(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_m, e: string) => {
    const k = e.toLowerCase();
    if (k === 'amp') return '&';
    if (k === 'lt') return '<';
    if (k === 'gt') return '>';
    if (k === 'quot') return '"';
    if (k === 'apos') return "'";
    return String.fromCodePoint(k.startsWith('#x') ? Number.parseInt(k.slice(2), 16) : Number.parseInt(k.slice(1), 10));
  });
}

function elements(xml: string, local: string): string[] {
  const rx = new RegExp(`<${P}${local}(?:\\s[^>]*)?>([\\s\\S]*?)</${P}${local}>`, 'g');
  return [...xml.matchAll(rx)].map((m) => m[1] ?? '');
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${P}${name}="([^"]*)"`).exec(tag);
  return m ? decodeXml(m[1]!) : undefined;
}

function richText(xml: string): string {
  const runs = elements(xml, 't').map(decodeXml);
  if (runs.length) return runs.join('');
  const cached = elements(xml, 'v').map(decodeXml);
  if (cached.length) return cached.join('');
  return elements(xml, 'f').map(decodeXml).join('');
}

/** Relationships of a part: Id -> absolute target path inside the package. */
function relationships(entries: Map<string, Buffer>, part: string): Map<string, string> {
  const dir = posix.dirname(part);
  const relsPath = posix.join(dir, '_rels', `${posix.basename(part)}.rels`);
  const xml = entryText(entries, relsPath) ?? '';
  const out = new Map<string, string>();
  for (const m of xml.matchAll(/<(?:\w+:)?Relationship\b[^>]*>/g)) {
    const id = attr(m[0], 'Id');
    const target = attr(m[0], 'Target');
    if (!id || !target) continue;
    out.set(id, target.startsWith('/') ? target.slice(1) : posix.normalize(posix.join(dir, target)));
  }
  return out;
}

function parseChart(xml: string, part: string): XlsxChart {
  const plotArea = elements(xml, 'plotArea')[0] ?? '';
  const types = [...plotArea.matchAll(new RegExp(`<${P}(\\w+Chart)\\b`, 'g'))].map((m) => m[1]!);
  const beforePlot = xml.split(new RegExp(`<${P}plotArea\\b`))[0] ?? '';
  const titleXml = elements(beforePlot, 'title')[0];
  const title = titleXml !== undefined ? richText(titleXml).trim() : undefined;
  const seriesRefs = elements(plotArea, 'ser').flatMap((ser) => elements(ser, 'f').map((f) => decodeXml(f).trim()));
  const barDir = new RegExp(`<${P}barDir\\s+val="(\\w+)"`).exec(plotArea)?.[1];
  const chart: XlsxChart = { type: [...new Set(types)].join('+'), seriesRefs, part };
  if (title) chart.title = title;
  if (barDir) chart.barDir = barDir;
  return chart;
}

/** chart part path -> sheet name, following workbook -> sheet -> drawing -> chart relationships. */
function chartSheets(entries: Map<string, Buffer>): Map<string, string> {
  const out = new Map<string, string>();
  const workbook = entryText(entries, 'xl/workbook.xml') ?? '';
  const wbRels = relationships(entries, 'xl/workbook.xml');
  for (const m of workbook.matchAll(/<(?:\w+:)?sheet\b[^>]*>/g)) {
    const name = attr(m[0], 'name');
    const rid = attr(m[0], 'id');
    const sheetPart = rid ? wbRels.get(rid) : undefined;
    if (!name || !sheetPart) continue;
    for (const drawing of relationships(entries, sheetPart).values()) {
      if (!drawing.includes('drawings/')) continue;
      for (const target of relationships(entries, drawing).values()) {
        if (target.includes('charts/')) out.set(target, name);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

/**
 * The package without its drawings (charts, images, shapes). exceljs 4.4 crashes on drawing
 * parts it cannot parse, e.g. the unprefixed DrawingML that openpyxl writes
 * ("Cannot read properties of undefined (reading 'anchors')", exceljs/exceljs#2591).
 */
function withoutDrawings(entries: Map<string, Buffer>): Buffer {
  const out = new Map<string, Buffer>();
  for (const [name, data] of entries) {
    if (name.startsWith('xl/drawings/')) continue;
    if (/^xl\/worksheets\/[^/]+\.xml$/.test(name)) {
      const xml = data.toString('utf8').replace(new RegExp(`<${P}(?:drawing|legacyDrawing)\\b[^>]*/>`, 'g'), '');
      out.set(name, Buffer.from(xml, 'utf8'));
    } else out.set(name, data);
  }
  return zip(out);
}

async function loadWorkbook(buf: Buffer, entries: Map<string, Buffer>): Promise<ExcelJS.Workbook> {
  const wb = new ExcelJS.Workbook();
  try {
    await wb.xlsx.load(buf as unknown as ArrayBuffer);
    return wb;
  } catch (err) {
    if (![...entries.keys()].some((name) => name.startsWith('xl/drawings/'))) throw err;
  }
  const retry = new ExcelJS.Workbook();
  await retry.xlsx.load(withoutDrawings(entries) as unknown as ArrayBuffer);
  return retry;
}

/** Sheets, formulas (via exceljs) and charts (from the chart parts) of an xlsx file. */
export async function readXlsx(buf: Buffer): Promise<XlsxContent> {
  const entries = unzip(buf);
  const wb = await loadWorkbook(buf, entries);
  const sheets: string[] = [];
  const formulas: Record<string, Record<string, string>> = {};
  for (const ws of wb.worksheets) {
    sheets.push(ws.name);
    const cells: Record<string, string> = {};
    ws.eachRow({ includeEmpty: false }, (row) => {
      row.eachCell({ includeEmpty: false }, (cell) => {
        const f = cell.formula;
        if (typeof f === 'string' && f !== '') cells[cell.address] = f.replace(/^=/, '');
      });
    });
    formulas[ws.name] = cells;
  }

  const sheetOf = chartSheets(entries);
  const charts = [...entries.keys()]
    .filter((name) => /^xl\/charts\/chart[^/]*\.xml$/.test(name))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((part) => {
      const chart = parseChart(entryText(entries, part) ?? '', part);
      const sheet = sheetOf.get(part);
      if (sheet) chart.sheet = sheet;
      return chart;
    });
  return { sheets, formulas, charts };
}

// ---------------------------------------------------------------------------
// External tools

/** True when `command` is an executable file on PATH. */
export function hasCommand(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

/** LibreOffice (soffice) and poppler (pdfinfo, pdftotext) are all on PATH. */
export function officeToolsAvailable(): boolean {
  return hasCommand('soffice') && hasCommand('pdfinfo') && hasCommand('pdftotext');
}

/** Parses CSV text (RFC 4180 quoting, any line ending) into rows of fields. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  const src = text.replace(/^\uFEFF/, '');
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (quoted) {
      if (ch === '"') {
        if (src[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && src[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/**
 * Opens an xlsx in headless LibreOffice, which recalculates every formula, and returns the
 * rows of one sheet as exported to CSV (raw values, not as formatted; UTF-8).
 * Each call uses a fresh LibreOffice profile, so calls may run in parallel.
 */
export async function recalculatedSheetCsv(xlsxPath: string, sheet: string): Promise<string[][]> {
  if (!hasCommand('soffice')) {
    throw new Error('LibreOffice is not installed (no `soffice` on PATH): cannot recalculate the workbook formulas');
  }
  const dir = mkdtempSync(join(tmpdir(), 'handoff-lo-'));
  try {
    const ext = extname(xlsxPath) || '.xlsx';
    const input = join(dir, `book${ext}`);
    copyFileSync(xlsxPath, input);
    const outDir = join(dir, 'out');
    // Tokens: separator ',', quote '"', UTF-8, from line 1, -, language, quoted-as-text off,
    // detect special numbers, "as shown" off (raw values), formulas off, trim off, sheet -1 = all sheets.
    const filter = 'csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1';
    const args = [
      `-env:UserInstallation=${pathToFileURL(join(dir, 'profile')).href}`,
      '--headless',
      '--norestore',
      '--nolockcheck',
      '--convert-to',
      filter,
      '--outdir',
      outDir,
      input,
    ];
    let stderr = '';
    try {
      const res = await run('soffice', args, { timeout: 120_000, env: { ...process.env, HOME: dir } });
      stderr = res.stderr;
    } catch (err) {
      throw new Error(`soffice failed to convert ${basename(xlsxPath)}: ${(err as Error).message}`);
    }
    const files = existsSync(outDir) ? readdirSync(outDir) : [];
    const wanted = `book-${sheet}.csv`;
    // With a single sheet some LibreOffice versions write book.csv without the sheet suffix.
    const found = files.includes(wanted)
      ? wanted
      : files.length === 1 && files[0] === 'book.csv'
        ? 'book.csv'
        : undefined;
    if (!found) {
      const names = files.map((f) => f.replace(/^book-?/, '').replace(/\.csv$/, '')).join(', ') || 'none';
      throw new Error(
        `LibreOffice produced no CSV for sheet "${sheet}" of ${basename(xlsxPath)} (sheets exported: ${names})${stderr ? `; soffice said: ${stderr.trim()}` : ''}`,
      );
    }
    return parseCsv(readFileSync(join(outDir, found), 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Plain text of a .docx body: one line per paragraph, table cells separated by tabs. */
export async function docxText(buf: Buffer): Promise<string> {
  const xml = entryText(unzip(buf), 'word/document.xml');
  if (xml === undefined) throw new Error('not a .docx file (no word/document.xml)');
  const text = xml
    .replace(/<w:tab\/>/g, '\t')
    .replace(/<w:br\/>|<w:cr\/>/g, '\n')
    .replace(/<\/w:p>/g, '\n')
    .replace(/<\/w:tc>/g, '\t')
    .replace(/<[^>]+>/g, '');
  return decodeXml(text)
    .split('\n')
    .map((line) => line.replace(/\t+$/, ''))
    .join('\n');
}

/** Page count (pdfinfo) and text (pdftotext, UTF-8, reading order) of a PDF file. */
export async function pdfInfo(path: string): Promise<{ pages: number; text: string }> {
  for (const tool of ['pdfinfo', 'pdftotext']) {
    if (!hasCommand(tool)) throw new Error(`poppler-utils is not installed (no \`${tool}\` on PATH)`);
  }
  const info = await run('pdfinfo', [path], { timeout: 30_000 });
  const pages = /^Pages:\s+(\d+)/m.exec(info.stdout);
  if (!pages) throw new Error(`pdfinfo printed no page count for ${basename(path)}`);
  const text = await run('pdftotext', ['-enc', 'UTF-8', path, '-'], { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
  return { pages: Number(pages[1]), text: text.stdout };
}
