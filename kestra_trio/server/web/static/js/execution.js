// `/executions/{id}`: header, tasks, Gantt timeline of attempts, live logs (SSE follow),
// downloads, audit trail, inputs/outputs on demand, cancel and restart.
import { get, post, follow, pages, offers } from "./api.js";
import { h, append, pagePath, stateBadge, fmtTime, fmtDuration, oneLine, json } from "./dom.js";
import { notice, confirmAction, navigate } from "./app.js";
import { LogView, LEVELS } from "./logview.js";
import { literal, literalText } from "./text.js";
import { labelsOf } from "./executions.js";

const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCELLED", "SKIPPED"]);
const POLL_MS = 1000;

export function executionPage(main, id, query) {
  const stop = new AbortController();
  let timer = null;
  let doc = null;

  const title = h("h1", null, "Execution ", h("span", { class: "mono" }, oneLine(id)), " ", h("span", { id: "exec-state" }));
  const actions = h("div", { class: "actions" });
  const header = h("dl", { class: "grid", id: "exec-header" });
  const tasks = h("tbody");
  const gantt = h("div", { class: "gantt", id: "gantt", role: "img", "aria-label": "Timeline of task attempts" });
  const audit = h("tbody");
  const io = h("div");
  const view = new LogView();
  view.box.id = "logs";

  // log filters
  const taskFilter = h("select", { name: "task", "aria-label": "Task" }, h("option", { value: "" }, "all tasks"));
  const levelBoxes = LEVELS.map((l) => h("input", { type: "checkbox", name: "level", value: l, checked: true }));
  const textFilter = h("input", { type: "search", name: "text", placeholder: "text in the line", autocomplete: "off" });
  const applyFilter = () => view.setFilter({
    task: taskFilter.value, levels: new Set(levelBoxes.filter((b) => b.checked).map((b) => b.value)), text: textFilter.value,
  });
  taskFilter.addEventListener("change", applyFilter);
  for (const b of levelBoxes) b.addEventListener("change", applyFilter);
  let typing = null; // a million lines are filtered once the typing pauses, not per key
  textFilter.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(applyFilter, 150); });
  view.onTasks = (names) => {
    const have = new Set([...taskFilter.options].map((o) => o.value));
    for (const n of names) if (!have.has(n)) taskFilter.append(h("option", { value: n }, oneLine(n)));
  };
  if (query.get("task")) { view.onTasks([query.get("task")]); taskFilter.value = query.get("task"); }
  if (query.get("q")) textFilter.value = query.get("q");
  if (query.get("task") || query.get("q")) applyFilter();
  const liveState = h("span", { class: "muted", id: "live-state" });

  const ioDetails = h("details", { id: "io" }, h("summary", null, "Inputs and outputs (masked)"), io);
  ioDetails.addEventListener("toggle", () => ioDetails.open && drawIo());
  const auditDetails = h("details", { id: "audit" }, h("summary", null, "Audit trail"),
    h("div", { class: "table-wrap" }, h("table", null,
      h("thead", null, h("tr", null, ["Time", "Event", "Details"].map((c) => h("th", { scope: "col" }, c)))), audit)));

  main.replaceChildren(
    h("p", null, h("a", { href: "/" }, "← Executions")),
    title, actions, header,
    h("h2", null, "Tasks"),
    h("div", { class: "table-wrap" }, h("table", { id: "tasks" },
      h("thead", null, h("tr", null, ["Task", "State", "Attempts", "Duration", "Exit", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      tasks)),
    h("h2", null, "Timeline"), gantt,
    h("h2", null, "Logs ", liveState),
    h("div", { class: "filters", role: "search", "aria-label": "Log filters" },
      h("label", null, "Task", taskFilter),
      h("fieldset", { class: "tabs", "aria-label": "Levels" }, levelBoxes.map((b) => h("label", null, b, " ", b.value))),
      h("label", null, "Text", textFilter),
      h("button", { type: "button", class: "ghost", onclick: () => download("txt") }, "Download .txt"),
      h("button", { type: "button", class: "ghost", onclick: () => download("jsonl") }, "Download .jsonl")),
    view.status, view.box,
    h("h2", null, "More"), auditDetails, ioDetails);

  async function refresh() {
    try {
      doc = await get(`/executions/${encodeURIComponent(id)}`, null, stop.signal);
      draw();
      notice(null);
    } catch (err) {
      if (stop.signal.aborted) return;
      notice(err.message);
      if (err.status === 404) return; // no such execution: nothing will change
    }
    if (!stop.signal.aborted && !(doc && TERMINAL.has(doc.execution.state))) timer = setTimeout(refresh, POLL_MS);
  }

  function draw() {
    const e = doc.execution;
    document.getElementById("exec-state")?.replaceChildren(stateBadge(e.state));
    const fields = [
      ["State", stateBadge(e.state)], ["Reason", e.reason], ["Message", e.message], ["Trigger", e.trigger],
      ["Workflow", h("span", null, h("a", { href: pagePath("workflows", e.workflow_id) }, oneLine(e.workflow_id)),
        e.workflow_revision != null ? ` revision ${e.workflow_revision}` : "")],
      ["Created", fmtTime(e.created_at)], ["Started", fmtTime(e.started_at)], ["Ended", fmtTime(e.ended_at)],
      ["Duration", fmtDuration(e.duration_ms)],
      ["Labels", Object.entries(labelsOf(e)).map(([k, v]) => `${k}=${v}`).join(", ") || null],
      ["Failed task", e.failed_task_id], ["Cancelled by", e.cancelled_by],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    header.replaceChildren(...fields.flatMap(([k, v]) => [h("dt", null, k), h("dd", null, typeof v === "string" ? oneLine(v) : v)]));
    drawActions(e);
    tasks.replaceChildren(...doc.tasks.map(taskRow));
    drawGantt();
    audit.replaceChildren(...doc.audit_events.map((a) => h("tr", null,
      h("td", { class: "mono" }, fmtTime(a.timestamp)), h("td", null, oneLine(a.event_type)),
      h("td", { class: "mono" }, a.metadata && Object.keys(a.metadata).length ? oneLine(JSON.stringify(a.metadata)) : ""))));
    if (ioDetails.open) drawIo();
  }

  function taskRow(t) {
    const last = t.attempts[t.attempts.length - 1];
    const error = t.error ? [t.error.message ?? t.error.type ?? "", t.error.stderr_tail?.length ? h("pre", { class: "stderr" }, literal([].concat(t.error.stderr_tail).join("\n"))) : null]
      : t.message || "";
    return h("tr", { "data-task": t.task_id },
      h("td", { class: "mono" }, oneLine(t.task_id)), h("td", null, stateBadge(t.state)),
      h("td", null, `${t.attempt_count ?? t.attempts.length}/${t.max_attempts ?? 1}`),
      h("td", null, fmtDuration(t.duration_ms)), h("td", null, last?.exit_code ?? (last?.signal ? `signal ${last.signal}` : "-")),
      h("td", { class: "error-text" }, typeof error === "string" ? oneLine(error) : error.map((x) => (typeof x === "string" ? oneLine(x) : x))));
  }

  function drawGantt() {
    const e = doc.execution;
    const times = doc.tasks.flatMap((t) => t.attempts.flatMap((a) => [a.started_at, a.ended_at])).filter(Boolean).map(Date.parse);
    const start = Date.parse(e.started_at || e.created_at) || Math.min(...times);
    const running = !TERMINAL.has(e.state);
    const end = Math.max(start + 1, Date.parse(e.ended_at) || 0, running ? Date.now() : 0, ...times);
    const span = end - start;
    const rows = doc.tasks.map((t) => {
      const track = h("div", { class: "gantt-track" });
      for (const a of t.attempts) {
        if (!a.started_at) continue;
        const from = Date.parse(a.started_at), to = a.ended_at ? Date.parse(a.ended_at) : (running ? Date.now() : from);
        const bar = h("div", { class: `gantt-bar s-${/^[A-Z]+$/.test(a.state) ? a.state : "X"}`,
          title: `${t.task_id} attempt ${a.number}: ${a.state}, ${fmtDuration(to - from)}${a.exit_code != null ? `, exit ${a.exit_code}` : ""}` });
        bar.style.left = `${((from - start) / span) * 100}%`;
        bar.style.width = `${Math.max(0.3, ((to - from) / span) * 100)}%`;
        track.append(bar);
      }
      return h("div", { class: "gantt-row" }, h("div", { class: "gantt-label mono", title: oneLine(t.task_id) }, oneLine(t.task_id)), track);
    });
    gantt.replaceChildren(...rows, h("div", { class: "gantt-axis", "aria-hidden": "true" }, h("span", null, "0"), h("span", null, fmtDuration(span / 2)), h("span", null, fmtDuration(span))));
    gantt.setAttribute("aria-label", `Timeline of task attempts over ${fmtDuration(span)}`);
  }

  function drawActions(e) {
    const terminal = TERMINAL.has(e.state);
    actions.replaceChildren();
    append(actions, [
      terminal ? null : h("button", { type: "button", class: "danger", id: "cancel", onclick: cancel }, "Cancel…"),
      terminal ? h("button", { type: "button", id: "restart", onclick: restart }, "Restart…") : null]);
  }

  async function cancel() {
    const answer = await confirmAction(`Cancel execution ${oneLine(id)}? Running tasks are stopped.`, { reason: true, okLabel: "Cancel execution" });
    if (!answer.ok) return;
    try {
      const res = await post(`/executions/${encodeURIComponent(id)}/cancel`, answer.reason ? { reason: answer.reason } : {});
      notice(res.requested ? "Cancel requested." : "Nothing to cancel: it has finished or a cancel was already requested.", "info");
      clearTimeout(timer);
      refresh();
    } catch (err) { notice(err.message); }
  }

  async function restart() {
    const e = doc.execution;
    if (await offers("POST", "/executions/{execution_id}/restart")) {
      // the engine's restart: what failed or did not run runs again, in this same execution
      const answer = await confirmAction(`Run again what failed or did not run in execution ${oneLine(e.id)}? Successful tasks keep their outputs.`, { okLabel: "Restart" });
      if (!answer.ok) return;
      try {
        await post(`/executions/${encodeURIComponent(id)}/restart`, {});
        window.location.reload();  // the page follows the execution again from its new attempt
      } catch (err) { notice(err.message); }
      return;
    }
    const answer = await confirmAction(`Start workflow ${oneLine(e.workflow_id)} again with this execution's inputs?`, { okLabel: "Restart" });
    if (!answer.ok) return;
    try {
      const started = await post("/executions", { workflow: e.workflow_id, inputs: e.inputs || {} });
      navigate(pagePath("executions", started.id));
    } catch (err) { notice(err.message); }
  }

  function drawIo() {
    const e = doc.execution;
    io.replaceChildren(h("h3", null, "Execution inputs"), h("pre", null, json(e.inputs ?? {})),
      ...doc.tasks.flatMap((t) => [h("h3", { class: "mono" }, oneLine(t.task_id)),
        h("pre", null, json({ inputs: t.inputs ?? null, outputs: t.outputs ?? null }))]));
  }

  async function download(kind) {
    notice("Preparing the download…", "info");
    try {
      const parts = [];
      const text = literalText();
      for await (const entries of pages(`/executions/${encodeURIComponent(id)}/logs`, { limit: 5000 }, "entries", stop.signal)) {
        let chunk = "";
        for (const en of entries) chunk += kind === "jsonl" ? jsonLine(en) : text(en);
        parts.push(chunk);
      }
      const blob = new Blob(parts, { type: kind === "jsonl" ? "application/x-ndjson" : "text/plain;charset=utf-8" });
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${id.replace(/[^A-Za-z0-9._-]/g, "_")}.${kind}`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      notice(null);
    } catch (err) { if (!stop.signal.aborted) notice(err.message); }
  }

  // live logs: every entry once, in order; `end` comes after the last line is committed
  follow(`/executions/${encodeURIComponent(id)}/logs/follow`, {}, {
    signal: stop.signal,
    onState: (s) => { liveState.textContent = s === "live" ? "(live)" : "(reconnecting…)"; },
    onEvent: (ev) => {
      if (ev.event === "end") {
        liveState.textContent = "(complete)";
        clearTimeout(timer);
        refresh();
        return;
      }
      if (ev.event !== "message" && ev.event !== "log") return;
      view.add(ev.id, JSON.parse(ev.data));
    },
  }).catch((err) => { if (!stop.signal.aborted) { liveState.textContent = ""; notice(err.message); } });

  refresh();
  return () => { stop.abort(); clearTimeout(timer); clearTimeout(typing); };
}

/** One entry exactly as `execution logs --jsonl` prints it (same keys, same order). */
export function jsonLine(en) {
  return JSON.stringify({
    execution_id: en.execution_id, task_id: en.task_id ?? null, timestamp: en.timestamp, level: en.level,
    source: en.source, message: en.message, metadata: en.metadata ?? {},
  }) + "\n";
}
