// `/`: executions, newest first, live (the first page is fetched again every 2 s), with
// filters by workflow, state and label (the API's) and a search box (over what is loaded).
import { get } from "./api.js";
import { h, pagePath, stateBadge, fmtTime, fmtDuration, oneLine } from "./dom.js";
import { notice } from "./app.js";

export const STATES = ["QUEUED", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"];
const PAGE = 100;
const POLL_MS = 2000;

export function executionsPage(main, query) {
  const rows = new Map(); // id → execution document
  let cursor = null;
  let stopped = false;
  let timer = null;
  const filters = {
    workflow: query.get("workflow") || "", state: query.get("state") || "", label: query.get("label") || "",
    search: query.get("q") || "",
  };

  const workflow = h("input", { name: "workflow", value: filters.workflow, placeholder: "workflow id", autocomplete: "off" });
  const state = h("select", { name: "state" }, h("option", { value: "" }, "any"),
    STATES.map((s) => h("option", { value: s, selected: s === filters.state }, s)));
  const label = h("input", { name: "label", value: filters.label, placeholder: "key=value", autocomplete: "off" });
  const search = h("input", { name: "q", type: "search", value: filters.search, placeholder: "id or workflow", autocomplete: "off" });
  const body = h("tbody");
  const more = h("button", { type: "button", class: "ghost", hidden: true, onclick: () => load(true) }, "Load older");
  const count = h("p", { class: "muted", "aria-live": "polite" });

  const apply = () => {
    Object.assign(filters, { workflow: workflow.value.trim(), state: state.value, label: label.value.trim(), search: search.value.trim() });
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ workflow: filters.workflow, state: filters.state, label: filters.label, q: filters.search })) if (v) q.set(k, v);
    history.replaceState(null, "", q.toString() ? `/?${q}` : "/");
    rows.clear();
    cursor = null;
    load(false);
  };
  workflow.addEventListener("change", apply);
  label.addEventListener("input", () => { filters.label = label.value.trim(); draw(); });
  state.addEventListener("change", apply);
  search.addEventListener("input", () => { filters.search = search.value.trim(); draw(); });

  main.replaceChildren(
    h("h1", null, "Executions"),
    h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); apply(); } },
      h("label", null, "Workflow", workflow), h("label", null, "State", state), h("label", null, "Label", label),
      h("label", null, "Search", search), h("button", { type: "submit" }, "Filter")),
    count,
    h("div", { class: "table-wrap" }, h("table", { id: "executions" },
      h("thead", null, h("tr", null, ["Execution", "Workflow", "State", "Trigger", "Start", "Duration", "Tasks"].map((c, i) =>
        h("th", { scope: "col", class: i === 3 || i === 6 ? "hide-narrow" : null }, c)))),
      body)),
    more);

  function params() {
    return { workflow: filters.workflow, state: filters.state, limit: PAGE };
  }

  async function load(older) {
    try {
      const page = await get("/executions", { ...params(), cursor: older ? cursor : undefined });
      if (stopped) return;
      for (const e of page.executions) rows.set(e.id, e);
      if (older || cursor === null) cursor = page.next_cursor;
      more.hidden = !cursor;
      notice(null);
      draw();
    } catch (err) {
      if (!stopped) notice(err.message);
    }
  }

  function draw() {
    const needle = filters.search.toLowerCase();
    const list = [...rows.values()]
      .filter((e) => !needle || e.id.toLowerCase().includes(needle) || e.workflow_id.toLowerCase().includes(needle))
      .filter((e) => hasLabel(e, filters.label))
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : a.id < b.id ? 1 : -1));
    body.replaceChildren(...list.map(row));
    count.textContent = `${list.length} shown${cursor ? " (older ones: Load older)" : ""}`;
  }

  function row(e) {
    return h("tr", { "data-id": e.id },
      h("td", { class: "mono" }, h("a", { href: pagePath("executions", e.id) }, oneLine(e.id))),
      h("td", null, h("a", { href: pagePath("workflows", e.workflow_id) }, oneLine(e.workflow_id))),
      h("td", null, stateBadge(e.state)),
      h("td", { class: "hide-narrow" }, oneLine(e.trigger)),
      h("td", null, fmtTime(e.started_at || e.created_at)),
      h("td", null, fmtDuration(e.duration_ms)),
      h("td", { class: "hide-narrow" }, taskSummary(e)));
  }

  const poll = async () => {
    await load(false);
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  };
  poll();
  return () => { stopped = true; clearTimeout(timer); };
}

/** The labels an execution was started with (`POST /executions` keeps them in trigger_data). */
export function labelsOf(e) {
  return e.labels ?? e.trigger_data?.labels ?? {};
}

/** `key=value` (exact) or `key` (present); empty: any. */
function hasLabel(e, filter) {
  if (!filter) return true;
  const labels = labelsOf(e);
  const [key, ...rest] = filter.split("=");
  return rest.length ? labels[key] === rest.join("=") : key in labels;
}

export function taskSummary(e) {
  const states = e.task_states || {};
  const parts = Object.entries(states).filter(([, n]) => n > 0).map(([s, n]) => `${n} ${s.toLowerCase()}`);
  return `${e.task_count ?? "-"}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}
