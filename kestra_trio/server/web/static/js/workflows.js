// `/workflows` and `/workflows/{id}`: the registry, triggers with next fire times, revisions
// with a diff between any two, enable/disable, and Run with a form made from the inputs.
import { get, post, offers, ApiError } from "./api.js";
import { h, append, pagePath, fmtTime, oneLine } from "./dom.js";
import { notice, navigate, confirmAction } from "./app.js";
import { diffLines } from "./diff.js";
import { checkInput } from "./inputs.js";

export function workflowsPage(main) {
  const body = h("tbody");
  main.replaceChildren(h("h1", null, "Workflows"),
    h("div", { class: "table-wrap" }, h("table", { id: "workflows" },
      h("thead", null, h("tr", null, ["Workflow", "Namespace", "Revision", "Enabled", "Tasks", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
      body)));
  let stopped = false;
  get("/workflows").then((res) => {
    if (stopped) return;
    body.replaceChildren(...res.workflows.map((w) => h("tr", { "data-id": w.id },
      h("td", null, h("a", { href: pagePath("workflows", w.id) }, oneLine(w.id))), h("td", null, oneLine(w.namespace)),
      h("td", null, String(w.revision)), h("td", null, w.enabled ? "yes" : "no"), h("td", null, String(w.task_count ?? "-")),
      h("td", null, fmtTime(w.updated_at)))));
    if (!res.workflows.length) body.append(h("tr", null, h("td", { colspan: "6", class: "muted" }, "No workflow yet: kestra-trio workflow apply FILE")));
  }).catch((err) => !stopped && notice(err.message));
  return () => { stopped = true; };
}

export function workflowPage(main, id) {
  let stopped = false;
  const head = h("div");
  const triggers = h("div");
  const form = h("form", { class: "run", id: "run-form", novalidate: true });
  const revisions = h("div");
  main.replaceChildren(h("p", null, h("a", { href: "/workflows" }, "← Workflows")),
    h("h1", null, "Workflow ", h("span", { class: "mono" }, oneLine(id))), head,
    h("h2", null, "Run"), form, h("h2", null, "Triggers"), triggers, h("h2", null, "Revisions"), revisions);

  async function load() {
    try {
      const w = await get(`/workflows/${encodeURIComponent(id)}`);
      if (stopped) return;
      drawHead(w);
      drawTriggers(w);
      drawForm(w);
      drawRevisions(w);
    } catch (err) { if (!stopped) notice(err.message); }
  }

  async function drawHead(w) {
    const toggles = await offers("POST", `/workflows/{workflow_id}/${w.enabled ? "disable" : "enable"}`);
    if (stopped) return;
    head.replaceChildren(
      h("dl", { class: "grid" },
        h("dt", null, "Namespace"), h("dd", null, oneLine(w.namespace)),
        h("dt", null, "Revision"), h("dd", null, String(w.revision)),
        h("dt", null, "Enabled"), h("dd", { id: "enabled" }, w.enabled ? "yes" : "no"),
        w.description ? [h("dt", null, "Description"), h("dd", null, String(w.description))] : null,
        w.problem ? [h("dt", null, "Problem"), h("dd", { class: "error-text" }, oneLine(w.problem))] : null,
        w.labels && Object.keys(w.labels).length ? [h("dt", null, "Labels"), h("dd", null, Object.entries(w.labels).map(([k, v]) => oneLine(`${k}=${v}`)).join(", "))] : null,
        h("dt", null, "Executions"), h("dd", null, h("a", { href: `/?workflow=${encodeURIComponent(w.id)}` }, "this workflow's executions"))),
      toggles ? h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", id: "toggle", onclick: () => toggle(w) }, w.enabled ? "Disable…" : "Enable"))
        : h("p", { class: "muted" }, `To ${w.enabled ? "disable" : "enable"} it: kestra-trio workflow ${w.enabled ? "disable" : "enable"} ${oneLine(w.id)}`));
  }

  async function toggle(w) {
    if (w.enabled) {
      const answer = await confirmAction(`Disable ${oneLine(w.id)}? Its triggers stop firing; running executions go on.`, { okLabel: "Disable" });
      if (!answer.ok) return;
    }
    try {
      await post(`/workflows/${encodeURIComponent(w.id)}/${w.enabled ? "disable" : "enable"}`, {});
      load();
    } catch (err) { notice(err.message); }
  }

  function drawTriggers(w) {
    const list = w.triggers || [];
    if (!list.length) { triggers.replaceChildren(h("p", { class: "muted" }, "No trigger: runs start by hand or through the API.")); return; }
    triggers.replaceChildren(h("div", { class: "table-wrap" }, h("table", { id: "triggers" },
      h("thead", null, h("tr", null, ["Trigger", "Type", "Enabled", "Schedule / source", "Next fire times"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", null, list.map((t) => h("tr", null,
        h("td", { class: "mono" }, oneLine(t.id)), h("td", null, oneLine(t.type)), h("td", null, t.enabled ? "yes" : "no"),
        h("td", { class: "mono" }, oneLine(t.type === "cron" ? `${t.cron}${t.timezone ? ` (${t.timezone})` : ""}` :
          t.type === "webhook" ? (t.path ?? "POST /api/v1/webhooks/…") : `${t.workflow ?? ""} ${(t.states || []).join(",")}`)),
        h("td", null, (t.next_fire_times || []).slice(0, 3).map(fmtTime).join(", ") || "-")))))));
  }

  function drawForm(w) {
    const fields = (w.inputs || []).map((spec) => {
      const id = `input-${spec.name}`;
      let control;
      if (spec.type === "boolean") {
        control = h("select", { id, name: spec.name }, spec.required ? null : h("option", { value: "" }, "(default)"),
          h("option", { value: "true", selected: spec.default === true }, "true"), h("option", { value: "false", selected: spec.default === false }, "false"));
      } else if (spec.type === "json") {
        control = h("textarea", { id, name: spec.name, rows: "3", class: "mono" });
        if (spec.default !== undefined && spec.default !== null) control.value = JSON.stringify(spec.default);
      } else {
        control = h("input", { id, name: spec.name, type: spec.type === "string" ? "text" : "text",
          autocomplete: "off", "aria-describedby": `${id}-error` });
        if (spec.type !== "string") control.setAttribute("inputmode", spec.type === "integer" ? "numeric" : "decimal");
        if (spec.default !== undefined && spec.default !== null) control.value = String(spec.default);
      }
      if (spec.required) control.setAttribute("aria-required", "true");
      const error = h("span", { class: "field-error", id: `${id}-error`, role: "alert" });
      return { spec, control, error, el: h("label", { for: id }, `${spec.name} (${spec.type}${spec.required ? ", required" : ""})`, control,
        spec.description ? h("span", { class: "muted" }, String(spec.description)) : null, error) };
    });
    const formError = h("p", { class: "error-text", id: "run-error", role: "alert" });
    form.replaceChildren();
    append(form, [fields.map((f) => f.el),
      fields.length ? null : h("p", { class: "muted" }, "This workflow declares no inputs."),
      formError, h("div", { class: "actions" }, h("button", { type: "submit", id: "run" }, "Run"))]);
    form.onsubmit = async (e) => {
      e.preventDefault();
      formError.textContent = "";
      const inputs = {};
      let ok = true;
      for (const f of fields) {
        const value = f.control.value;
        const problem = checkInput(f.spec, value);
        f.error.textContent = problem ?? "";
        if (problem) { ok = false; f.control.setAttribute("aria-invalid", "true"); } else f.control.removeAttribute("aria-invalid");
        if (!problem && value !== "") inputs[f.spec.name] = value;
      }
      if (!ok) { formError.textContent = "Fix the inputs marked above."; return; }
      try {
        const started = await post("/executions", { workflow: w.id, inputs });
        navigate(pagePath("executions", started.id));
      } catch (err) {
        formError.textContent = err instanceof ApiError ? err.message : String(err);
      }
    };
  }

  async function drawRevisions(w) {
    let list;
    if (!(await offers("GET", "/workflows/{workflow_id}/revisions"))) {
      revisions.replaceChildren(h("p", { class: "muted" }, `Revision ${w.revision}. Its history and diffs: kestra-trio workflow history ${oneLine(w.id)}`));
      return;
    }
    try {
      list = (await get(`/workflows/${encodeURIComponent(id)}/revisions`)).revisions;
    } catch (err) {
      revisions.replaceChildren(h("p", { class: "muted" }, `Revision ${w.revision}. (History: ${err.message})`));
      return;
    }
    if (stopped) return;
    const numbers = list.map((r) => r.revision).sort((a, b) => a - b);
    const pick = (name, selected) => h("select", { name, "aria-label": name === "from" ? "Old revision" : "New revision" },
      numbers.map((n) => h("option", { value: String(n), selected: n === selected }, `revision ${n}`)));
    const from = pick("from", numbers.length > 1 ? numbers[numbers.length - 2] : numbers[0]);
    const to = pick("to", numbers[numbers.length - 1]);
    const out = h("div", { class: "diff", id: "diff", role: "region", "aria-label": "Differences" });
    const show = async () => {
      try {
        const [a, b] = await Promise.all([from.value, to.value].map((n) => get(`/workflows/${encodeURIComponent(id)}`, { revision: n })));
        out.replaceChildren(...diffLines(a.source ?? "", b.source ?? "").map(([op, line]) =>
          h("div", { class: op === "+" ? "add" : op === "-" ? "del" : null }, `${op} ${line}`)));
      } catch (err) { out.replaceChildren(h("p", { class: "error-text" }, err.message)); }
    };
    from.addEventListener("change", show);
    to.addEventListener("change", show);
    revisions.replaceChildren(
      h("div", { class: "table-wrap" }, h("table", { id: "revisions" },
        h("thead", null, h("tr", null, ["Revision", "Applied", "Hash"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, list.map((r) => h("tr", null, h("td", null, String(r.revision)), h("td", null, fmtTime(r.applied_at)),
          h("td", { class: "mono" }, oneLine(String(r.sha256 ?? "").slice(0, 12)))))))),
      h("div", { class: "filters" }, h("label", null, "From", from), h("label", null, "To", to)), out);
    show();
  }

  load();
  return () => { stopped = true; };
}
