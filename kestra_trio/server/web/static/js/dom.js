// The only way the pages build DOM: untrusted strings become text nodes, never HTML.
// h(tag, props, ...children): props are a fixed set (class, id, href from internal paths,
// data-*, aria-*, type, ...); `on*` attributes are refused; a child string is a text node.

const ALLOWED_ATTRS = /^(class|id|type|name|value|title|for|role|tabindex|disabled|checked|selected|min|max|step|placeholder|required|novalidate|rows|inputmode|autocomplete|colspan|scope|download|hidden|open|data-[a-z-]+|aria-[a-z-]+)$/;

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") el.textContent = String(value);
      else if (key === "href") el.setAttribute("href", internalHref(value));
      else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
      else if (ALLOWED_ATTRS.test(key)) el.setAttribute(key, value === true ? "" : String(value));
      else throw new Error(`attribute not allowed: ${key}`);
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Links go only to our own pages: a path starting with one "/", its parts URI-encoded. */
export function internalHref(path) {
  const text = String(path);
  if (!/^\/(?![\/\\])/.test(text)) throw new Error("only internal links");
  return text;
}

export function pagePath(...parts) {
  return "/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function stateBadge(state) {
  const s = String(state ?? "-");
  return h("span", { class: `state s-${/^[A-Z]+$/.test(s) ? s : "X"}` }, s);
}

// --- formatting (pure)

export { oneLine } from "./text.js";

export function fmtTime(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined) return "-";
  ms = Math.max(0, Math.round(ms));
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(1)}s`;
  if (s < 60) return `${Math.round(s)}s`;
  const m = Math.floor(s / 60), rs = Math.round(s % 60);
  if (m < 60) return rs ? `${m}m ${rs}s` : `${m}m`;
  const hr = Math.floor(m / 60), rm = m % 60;
  if (hr < 24) return rm ? `${hr}h ${rm}m` : `${hr}h`;
  const d = Math.floor(hr / 24), rh = hr % 24;
  return rh ? `${d}d ${rh}h` : `${d}d`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
