// The router: one HTML shell, pages drawn from the path (history API); theme; token and
// confirmation dialogs. Each page returns a cleanup function (stops its polls and streams).
import { onTokenNeeded, setToken, token } from "./api.js";
import { executionsPage } from "./executions.js";
import { executionPage } from "./execution.js";
import { workflowsPage, workflowPage } from "./workflows.js";
import { h, oneLine } from "./dom.js";

const main = document.getElementById("main");
let cleanup = null;

const ROUTES = [
  [/^\/$/, (m, q) => executionsPage(main, q), "executions", () => "Executions"],
  [/^\/executions\/([^/]+)$/, (m, q) => executionPage(main, decodeURIComponent(m[1]), q), "executions", (m) => `Execution ${decodeURIComponent(m[1])}`],
  [/^\/workflows$/, (m, q) => workflowsPage(main, q), "workflows", () => "Workflows"],
  [/^\/workflows\/([^/]+)$/, (m, q) => workflowPage(main, decodeURIComponent(m[1]), q), "workflows", (m) => `Workflow ${decodeURIComponent(m[1])}`],
];

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route();
}

function route() {
  cleanup?.();
  cleanup = null;
  notice(null);
  const query = new URLSearchParams(location.search);
  for (const [re, page, nav, title] of ROUTES) {
    const m = location.pathname.match(re);
    if (!m) continue;
    document.title = `${oneLine(title(m))} · kestra-trio`;
    for (const a of document.querySelectorAll("[data-nav]")) {
      if (a.dataset.nav === nav) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    main.replaceChildren();
    cleanup = page(m, query) || null;
    return;
  }
  main.replaceChildren(h("h1", null, "Not found"), h("p", null, h("a", { href: "/" }, "Executions")));
}

/** A one-line message at the top of the page (an error unless kind = "info"); null hides it. */
export function notice(message, kind = "error") {
  const el = document.getElementById("notice");
  if (message === null) { el.hidden = true; el.textContent = ""; return; }
  el.className = kind === "info" ? "info" : "";
  el.textContent = String(message);
  el.hidden = false;
}

/** Ask before a destructive action; resolves to {ok, reason}. */
export function confirmAction(text, { reason = false, okLabel = "Confirm" } = {}) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  document.getElementById("confirm-reason-label").hidden = !reason;
  const input = document.getElementById("confirm-reason");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve({ ok: dialog.returnValue === "ok", reason: input.value.trim() }), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const ok = dialog.returnValue === "ok" && input.value.trim() !== "";
      if (ok) setToken(input.value.trim());
      resolve(ok);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

let asking = null;
onTokenNeeded(() => (asking ??= askToken().finally(() => { asking = null; })));

function theme(value) {
  document.documentElement.dataset.theme = value;
  try { localStorage.setItem("kestra-trio.theme", value); } catch { /* private mode */ }
}

function start() {
  let saved = null;
  try { saved = localStorage.getItem("kestra-trio.theme"); } catch { /* private mode */ }
  theme(saved || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
  document.getElementById("theme").addEventListener("click", () =>
    theme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
  document.getElementById("token-button").addEventListener("click", async () => {
    if (await askToken()) route();
  });
  document.getElementById("token-button").textContent = token() ? "Token ✓" : "Token";
  // internal links go through the router (a modified click opens a tab as usual)
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.hasAttribute("download")) return;
    const href = a.getAttribute("href");
    if (!href.startsWith("/") || href.startsWith("//") || href.startsWith("/api/") || href.startsWith("/static/")) return;
    e.preventDefault();
    navigate(href);
    main.focus({ preventScroll: true });
  });
  addEventListener("popstate", route);
  route();
}

start();
