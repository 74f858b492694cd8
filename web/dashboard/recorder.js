// The recorder tasks (#/recorders): the tasks named by schedules or typed in, each with
// its last command's status and start / stop / status buttons; the schedules. Followed
// live: a command's result (scheduled, or sent by anyone) updates its task's card, a
// schedule created, changed or deleted draws the page again.

import { api } from "./api.js";
import { h } from "./dom.js";

const KEY = "fleetprobe.recorder-tasks";
let wired = false;

function typedTasks() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "[]");
  } catch {
    return [];
  }
}

function describe(result) {
  if (!result) return "no command yet";
  const parts = [result.cmd, result.msg_status || result.error_kind || "", result.app_status || ""];
  const file = result.reply_payload && result.reply_payload.file_path;
  if (file) parts.push(file);
  if (result.error) parts.push(result.error);
  parts.push(result.created_at || "");
  return parts.filter(Boolean).join(" · ");
}

function taskCard(taskId) {
  const status = h("output", { class: "recorder-status", "data-status-of": taskId }, "…");
  const card = h("div", { class: "panel recorder", "data-task": taskId }, h("h3", {}, taskId), status);
  const run = async (method, cmd) => {
    status.textContent = `${cmd}…`;
    try {
      const body = method === "POST" ? {} : undefined;
      const result = await api(method, `/recorder/${encodeURIComponent(taskId)}/${cmd}`, body);
      status.textContent = describe(result);
    } catch (err) {
      const detail = err.detail && typeof err.detail === "object" && !Array.isArray(err.detail) ? err.detail.error || err.message : err.message;
      status.textContent = `${cmd}: ${detail}`;
    }
  };
  // "Status" asks the recorder now (POST); its last known status is shown from the start.
  for (const [label, method, cmd] of [["Start", "POST", "start"], ["Stop", "POST", "stop"], ["Status", "POST", "status"]]) {
    const b = h("button", { type: "button", "data-cmd": cmd }, label);
    b.addEventListener("click", () => run(method, cmd));
    card.append(b);
  }
  api("GET", `/recorder/${encodeURIComponent(taskId)}/commands?limit=1`)
    .then((list) => (status.textContent = describe(list[0])))
    .catch((err) => (status.textContent = err.message));
  return card;
}

export async function showRecorders(root) {
  if (!wired) {
    wired = true;
    root.querySelector("#recorder-add").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = event.target.elements.task_id.value.trim();
      if (!id) return;
      sessionStorage.setItem(KEY, JSON.stringify([...new Set([...typedTasks(), id])]));
      event.target.reset();
      showRecorders(root);
    });
  }
  const tbody = root.querySelector("#recorder-schedules tbody");
  let schedules = [];
  try {
    schedules = await api("GET", "/recorder/schedules");
  } catch (err) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: "5", class: "error" }, err.message)));
  }
  tbody.replaceChildren(
    ...schedules.map((s) =>
      h(
        "tr",
        {},
        h("td", {}, s.task_id),
        h("td", {}, s.cmd),
        h("td", {}, s.cron ? `cron ${s.cron}` : `every ${s.interval_seconds} s`),
        h("td", {}, s.next_run_at || "—"),
        h("td", {}, s.is_active ? "yes" : "no"),
      ),
    ),
  );
  if (!schedules.length) tbody.append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "No schedules.")));
  const tasks = [...new Set([...schedules.map((s) => s.task_id), ...typedTasks()])];
  const box = root.querySelector("#recorder-tasks");
  box.replaceChildren(...tasks.map(taskCard));
  if (!tasks.length) box.append(h("p", { class: "muted" }, "No recorder task known yet: type a task id above."));
}

window.addEventListener("fleetprobe:event", ({ detail: { type, payload } }) => {
  const root = document.getElementById("recorder-view");
  if (root.hidden) return;
  if (type === "recorder.command" && payload.task_id) {
    for (const out of root.querySelectorAll(".recorder-status")) {
      if (out.dataset.statusOf === payload.task_id) out.textContent = describe(payload);
    }
  } else if (type.startsWith("recorder.schedule.")) {
    showRecorders(root);
  }
});
