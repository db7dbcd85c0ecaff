// A program's colours in a log line, by the rule of kestra_trio/cli/terminal_text.py (keep
// the two in step): a `\r`-redrawn line shows its last state; SGR colour/bold sequences are
// rendered as spans; every other escape and control character is shown as inert text.
import { ESCAPED, literal } from "./text.js";

export const MAX_SGR_PARAMS = 64;
const SGR = /\x1b\[([0-9;]*)m/g;
const SIMPLE = new Set([0, 1, 22, 39, 49]);
for (let i = 30; i < 38; i++) SIMPLE.add(i);
for (let i = 40; i < 48; i++) SIMPLE.add(i);
for (let i = 90; i < 98; i++) SIMPLE.add(i);
for (let i = 100; i < 108; i++) SIMPLE.add(i);
const EXTENDED = { "5": 1, "2": 3 };

export function isColour(params) {
  if (params.length > MAX_SGR_PARAMS) return false;
  const parts = params.split(";");
  let i = 0;
  while (i < parts.length) {
    const code = parseInt(parts[i] || "0", 10);
    if (code === 38 || code === 48) {
      const size = EXTENDED[parts[i + 1] ?? ""];
      const values = size ? parts.slice(i + 2, i + 2 + size) : [];
      if (!size || values.length !== size || !values.every((v) => v !== "" && parseInt(v, 10) <= 255)) return false;
      i += 2 + size;
    } else if (SIMPLE.has(code)) i += 1;
    else return false;
  }
  return true;
}

/** The last state of a `\r`-redrawn line, carrying the colour sequences of what it replaced. */
export function lastState(line) {
  if (!line.includes("\r")) return line;
  const pieces = line.split("\r");
  let last = pieces.length - 1;
  for (let i = pieces.length - 1; i >= 0; i--) if (pieces[i]) { last = i; break; }
  let carried = "";
  for (const piece of pieces.slice(0, last)) for (const m of piece.matchAll(SGR)) if (isColour(m[1])) carried += m[0];
  return carried + pieces[last];
}

const NAMED = (n) => `var(--a${n})`;
function cube(n) {
  if (n < 16) return NAMED(n);
  if (n >= 232) { const v = 8 + (n - 232) * 10; return `rgb(${v},${v},${v})`; }
  n -= 16;
  const c = (x) => (x ? 55 + x * 40 : 0);
  return `rgb(${c(Math.floor(n / 36))},${c(Math.floor(n / 6) % 6)},${c(n % 6)})`;
}

function applySgr(style, params) {
  const parts = params.split(";");
  for (let i = 0; i < parts.length; i++) {
    const code = parseInt(parts[i] || "0", 10);
    if (code === 0) { style.fg = style.bg = null; style.bold = false; }
    else if (code === 1) style.bold = true;
    else if (code === 22) style.bold = false;
    else if (code === 39) style.fg = null;
    else if (code === 49) style.bg = null;
    else if (code >= 30 && code <= 37) style.fg = NAMED(code - 30);
    else if (code >= 90 && code <= 97) style.fg = NAMED(code - 90 + 8);
    else if (code >= 40 && code <= 47) style.bg = NAMED(code - 40);
    else if (code >= 100 && code <= 107) style.bg = NAMED(code - 100 + 8);
    else if (code === 38 || code === 48) {
      const key = code === 38 ? "fg" : "bg";
      if (parts[i + 1] === "5") { style[key] = cube(parseInt(parts[i + 2], 10)); i += 2; }
      else { style[key] = `rgb(${+parts[i + 2]},${+parts[i + 3]},${+parts[i + 4]})`; i += 4; }
    }
  }
}

/**
 * Append `message` (one log entry, possibly several lines) to `el` as text nodes and spans.
 * Colours are set through the CSSOM (el.style), which the CSP allows; nothing is parsed as HTML.
 */
export function renderInto(el, message) {
  const lines = String(message).split("\n");
  lines.forEach((raw, index) => {
    if (index > 0) el.append(span("\\n", null, "esc"));
    const line = lastState(raw);
    const style = { fg: null, bg: null, bold: false };
    let start = 0;
    for (const m of line.matchAll(SGR)) {
      pushText(el, line.slice(start, m.index), style);
      if (isColour(m[1])) applySgr(style, m[1]);
      else el.append(span(literal(m[0]), null, "esc"));
      start = m.index + m[0].length;
    }
    pushText(el, line.slice(start), style);
  });
}

function pushText(el, text, style) {
  if (!text) return;
  // escaped characters stand out, so an ESC shown inert is visibly not part of the text
  let last = 0;
  for (const m of text.matchAll(ESCAPED)) {
    if (m.index > last) el.append(span(text.slice(last, m.index), style));
    el.append(span(literal(m[0]), null, "esc"));
    last = m.index + 1;
  }
  if (last < text.length) el.append(span(text.slice(last), style));
}

function span(text, style, cls) {
  if (!style && !cls) return document.createTextNode(text);
  if (style && !style.fg && !style.bg && !style.bold && !cls) return document.createTextNode(text);
  const s = document.createElement("span");
  s.textContent = text;
  if (cls) s.className = cls;
  if (style) {
    if (style.bold) s.className = "b";
    if (style.fg) s.style.color = style.fg;
    if (style.bg) s.style.backgroundColor = style.bg;
  }
  return s;
}

/** The visible text of a message (for the text filter and the .txt download): SGR removed. */
export function plainText(message) {
  return String(message).split("\n").map((l) => lastState(l).replace(SGR, (m, p) => (isColour(p) ? "" : m))).join("\n");
}
