// The HTTP API (/api/v1), with the token carried in a header (never a cookie: no CSRF surface).
// The token lives in this tab's sessionStorage; a 401 asks for one.

export const API = "/api/v1";
const TOKEN_KEY = "kestra-trio.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}
export function setToken(value) {
  try { value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ }
}

let askToken = null; // set by app.js: () => Promise<boolean> (true when a new token was given)
export function onTokenNeeded(fn) { askToken = fn; }

function headers(extra) {
  const out = { Accept: "application/json", ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

export function url(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, one);
  }
  const s = q.toString();
  return API + path + (s ? `?${s}` : "");
}

async function errorOf(res) {
  let code = "http_" + res.status, message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body && typeof body.message === "string") { message = body.message; code = String(body.error || code); }
  } catch { /* not JSON */ }
  return new ApiError(res.status, code, message);
}

/** fetch + JSON, retried once after the user gave a token on a 401. */
export async function call(method, path, { params, body, signal } = {}) {
  for (let round = 0; ; round++) {
    const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }), signal, credentials: "omit" };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(url(path, params), init);
    if (res.status === 401 && round === 0 && askToken && (await askToken())) continue;
    if (!res.ok) throw await errorOf(res);
    if (res.status === 204) return null;
    return res.json();
  }
}

export const get = (path, params, signal) => call("GET", path, { params, signal });
export const post = (path, body) => call("POST", path, { body });

/**
 * Server-Sent Events over fetch (EventSource cannot send an Authorization header).
 * Calls onEvent({event, id, data}) for each event; resumes after a dropped connection with
 * Last-Event-ID = the last id seen, so no entry is missed or repeated. Resolves when an
 * `end` event arrived, or when `signal` aborts.
 */
export async function follow(path, params, { onEvent, signal, lastEventId = null, onState }) {
  let lastId = lastEventId;
  let delay = 250;
  while (!signal.aborted) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastId !== null) h["Last-Event-ID"] = String(lastId);
      const res = await fetch(url(path, params), { headers: h, signal, credentials: "omit", cache: "no-store" });
      if (res.status === 401 && askToken && (await askToken())) continue;
      if (!res.ok) throw await errorOf(res);
      onState?.("live");
      delay = 250;
      const ended = await readEvents(res.body, (ev) => {
        if (ev.id !== null) lastId = ev.id;
        onEvent(ev);
      });
      if (ended) return;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
      onState?.("reconnecting");
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 5000);
  }
}

async function readEvents(stream, emit) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let ev = { event: "message", id: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return false;
    buffer += value;
    let start = 0, nl;
    while ((nl = buffer.indexOf("\n", start)) !== -1) {
      let line = buffer.slice(start, nl);
      start = nl + 1;
      if (line.endsWith("\r")) line = line.slice(0, -1);
      if (line === "") {
        if (ev.data.length || ev.event !== "message") {
          const out = { event: ev.event, id: ev.id, data: ev.data.join("\n") };
          emit(out);
          if (out.event === "end") { reader.cancel().catch(() => {}); return true; }
        }
        ev = { event: "message", id: null, data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let val = colon === -1 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "data") ev.data.push(val);
      else if (field === "event") ev.event = val;
      else if (field === "id") ev.id = val;
    }
    buffer = buffer.slice(start);
  }
}

let spec = null;
/** Whether the server's API has `method path` (its OpenAPI document, read once): the pages
 * offer what the server can do — enable/disable and revision history came after the first API. */
export async function offers(method, path) {
  spec ??= get("/openapi.json").catch(() => ({ paths: {} }));
  const paths = (await spec).paths || {};
  return Boolean(paths[API + path]?.[method.toLowerCase()]);
}

/** Every page of a paged list: yields each page's items (never cut: follows next_cursor to the end). */
export async function* pages(path, params, key, signal) {
  let cursor = null;
  do {
    const page = await get(path, { ...params, cursor: cursor ?? undefined }, signal);
    yield page[key];
    cursor = page.next_cursor;
  } while (cursor);
}
