// Live logs with virtual scrolling: entries are kept in compact columns (one string and a few
// small numbers per entry), only the ~50 rows on screen exist in the DOM, so a million lines
// stay smooth. Filters (task, level, text) build an index of matching entries.
import { h, oneLine } from "./dom.js";
import { renderInto, plainText } from "./ansi.js";

export const ROW_HEIGHT = 20;
export const LEVELS = ["DEBUG", "INFO", "WARN", "ERROR"];
/** a longer message is shown cut on screen (the downloads have it whole) */
export const SHOWN_CHARS = 4000;
const OVERSCAN = 10;

class Column {
  constructor(Type) { this.Type = Type; this.data = new Type(1024); this.length = 0; }
  push(v) {
    if (this.length === this.data.length) { const n = new this.Type(this.data.length * 2); n.set(this.data); this.data = n; }
    this.data[this.length++] = v;
  }
}

export class LogView {
  constructor() {
    this.messages = [];
    this.time = new Column(Float64Array);
    this.level = new Column(Uint8Array);
    this.task = new Column(Uint16Array);
    this.names = [""]; // task ids, 0 = none
    this.nameIndex = new Map([["", 0]]);
    this.lastId = null;
    this.filter = { task: "", levels: new Set(LEVELS), text: "" };
    this.visible = null; // Int32Array of entry indices, or null = every entry
    this.follow = true; // keep the end in view while lines arrive
    this.pending = false;
    this.onTasks = null;

    this.status = h("p", { class: "log-status", "aria-live": "polite" });
    this.spacer = h("div", { class: "log-spacer" });
    this.rows = h("div", { class: "log-rows", role: "list" });
    this.box = h("div", { class: "logview", tabindex: "0", role: "region", "aria-label": "Log lines" }, this.spacer, this.rows);
    this.box.addEventListener("scroll", () => {
      this.follow = this.box.scrollTop + this.box.clientHeight >= this.box.scrollHeight - ROW_HEIGHT;
      this.draw();
    });
    this.box.addEventListener("keydown", (e) => this.key(e));
    new ResizeObserver(() => this.draw()).observe(this.box);
  }

  get count() { return this.messages.length; }
  get shownCount() { return this.visible ? this.visible.length : this.messages.length; }

  /** One entry from the follow stream (`id` = the entry's id: a repeated one is dropped). */
  add(id, entry) {
    if (id !== null && this.lastId !== null && Number(id) <= Number(this.lastId)) return;
    if (id !== null) this.lastId = id;
    const i = this.messages.length;
    this.messages.push(String(entry.message ?? ""));
    this.time.push(Date.parse(entry.timestamp) || 0);
    this.level.push(Math.max(0, LEVELS.indexOf(entry.level)));
    const name = entry.task_id ?? "";
    let t = this.nameIndex.get(name);
    if (t === undefined) {
      t = this.names.length;
      this.names.push(name);
      this.nameIndex.set(name, t);
      this.onTasks?.(this.names.slice(1));
    }
    this.task.push(t);
    if (this.visible && this.matches(i)) this.visible.push(i);
    this.schedule();
  }

  matches(i) {
    const f = this.filter;
    if (f.task && this.names[this.task.data[i]] !== f.task) return false;
    if (!f.levels.has(LEVELS[this.level.data[i]])) return false;
    if (f.text && !plainText(this.messages[i]).toLowerCase().includes(f.text)) return false;
    return true;
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    const f = this.filter;
    f.text = (f.text || "").toLowerCase();
    if (!f.task && f.levels.size === LEVELS.length && !f.text) this.visible = null;
    else {
      this.visible = new Column(Int32Array);
      for (let i = 0; i < this.messages.length; i++) if (this.matches(i)) this.visible.push(i);
    }
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const n = this.shownCount;
    this.spacer.style.height = `${n * ROW_HEIGHT}px`;
    if (this.follow) this.box.scrollTop = this.box.scrollHeight;
    const first = Math.max(0, Math.floor(this.box.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(n, Math.ceil((this.box.scrollTop + this.box.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    this.rows.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    const out = [];
    for (let k = first; k < last; k++) out.push(this.row(this.visible ? this.visible.data[k] : k, k));
    this.rows.replaceChildren(...out);
    const total = this.messages.length;
    this.status.textContent = n === total ? `${total.toLocaleString("en")} lines` : `${n.toLocaleString("en")} of ${total.toLocaleString("en")} lines`;
  }

  row(i, position) {
    const level = LEVELS[this.level.data[i]];
    const name = this.names[this.task.data[i]];
    const line = h("div", { class: "log-line", role: "listitem", "data-index": String(i), "data-position": String(position) },
      h("span", { class: "ts" }, new Date(this.time.data[i]).toISOString().slice(11, 23), " "),
      h("span", { class: `lv lv-${level}` }, level.padEnd(5), " "),
      name ? h("span", { class: "task" }, oneLine(name), " ") : null);
    const body = h("span", { class: "msg" });
    let message = this.messages[i];
    if (message.length > SHOWN_CHARS) {
      renderInto(body, message.slice(0, SHOWN_CHARS));
      body.append(h("span", { class: "esc" }, ` … ${(message.length - SHOWN_CHARS).toLocaleString("en")} more characters (in the download)`));
    } else renderInto(body, message);
    line.append(body);
    return line;
  }

  key(e) {
    const page = Math.max(1, Math.floor(this.box.clientHeight / ROW_HEIGHT) - 1) * ROW_HEIGHT;
    const moves = { ArrowDown: ROW_HEIGHT, ArrowUp: -ROW_HEIGHT, PageDown: page, PageUp: -page };
    if (e.key in moves) this.box.scrollTop += moves[e.key];
    else if (e.key === "Home") this.box.scrollTop = 0;
    else if (e.key === "End") this.box.scrollTop = this.box.scrollHeight;
    else return;
    e.preventDefault();
  }

}

