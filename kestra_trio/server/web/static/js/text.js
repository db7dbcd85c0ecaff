// Untrusted text made visible character for character — the rule of `literal` in
// kestra_trio/cli/formatting.py (keep the two in step): C0/C1 control characters except tab
// and newline, DEL, bidi overrides/isolates and line separators become escapes (`\x1b`, `\r`,
// `\u202e`), so nothing in a log line can move the cursor, reorder text or fake a line break.
// Also: log entries as `execution logs` writes them to a file.

const ESCAPES = new Map();
for (let c = 0; c < 0x20; c++) if (c !== 0x09 && c !== 0x0a) ESCAPES.set(c, `\\x${c.toString(16).padStart(2, "0")}`);
ESCAPES.set(0x0d, "\\r");
for (let c = 0x7f; c < 0xa0; c++) ESCAPES.set(c, `\\x${c.toString(16).padStart(2, "0")}`);
for (const c of [0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x2028, 0x2029])
  ESCAPES.set(c, `\\u${c.toString(16).padStart(4, "0")}`);
const LINE_ESCAPES = new Map([...ESCAPES, [0x09, "\\t"], [0x0a, "\\n"]]);
/** the characters `literal` escapes (global: use with matchAll/replace) */
export const ESCAPED = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
const ESCAPED_IN_LINE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g;
const LEVELS = new Set(["DEBUG", "INFO", "WARN", "ERROR"]);

/** `text` with every character of ESCAPED shown as its escape; tab and newline kept. */
export function literal(text) {
  return String(text).replace(ESCAPED, (c) => ESCAPES.get(c.charCodeAt(0)));
}

/** `literal` for text that must stay on one line (ids, reasons in a cell): tab and newline escaped too. */
export function oneLine(text) {
  return String(text ?? "").replace(ESCAPED_IN_LINE, (c) => LINE_ESCAPES.get(c.charCodeAt(0)));
}

/** A formatter of log entries exactly as `execution logs > file` writes them (LogLineFormatter + literal). */
export function literalText() {
  return (en) => {
    const level = String(en.level);
    const tag = LEVELS.has(level) ? `[${level}]` : `[${literal(level)}]`;
    const source = literal(String(en.source));
    let message = literal(String(en.message));
    if (message.includes("\n")) message = message.replaceAll("\n", "\n" + " ".repeat(31 + (LEVELS.has(level) ? level.length + 2 : tag.length) + source.length));
    return `[${String(en.timestamp).replace(/Z$/, "")}Z] ${tag} [${source}] ${message}\n`;
  };
}
