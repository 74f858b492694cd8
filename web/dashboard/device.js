// The device page (#/devices/N): latency over 24 h / 7 d / 30 d, incidents, state changes,
// recent results with each condition's verdict. Routes this server lacks show "not available".

import { api, features } from "./api.js";
import { latencyChart } from "./charts.js";
import { h } from "./dom.js";
import { checkOutcome, parseList } from "./parse.js";

const WINDOWS = { "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const LIMIT = 1000;
let current = null; // {id, window, root}

function table(headers, rows) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ...headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
  );
}

function stateWord(state) {
  return h("span", { class: `state state-${state}` }, state);
}

function verdictList(check) {
  const all = [...(check.verdicts || []), ...(check.degraded_verdicts || []).map((v) => ({ ...v, degraded: true }))];
  if (!all.length) return h("span", { class: "muted" }, check.error || "—");
  return h(
    "ul",
    { class: "verdicts" },
    ...all.map((v) =>
      h(
        "li",
        { class: v.success ? "ok" : "failed" },
        `${v.success ? "✓" : "✗"} ${v.degraded ? "degraded when " : ""}${v.condition}`,
        v.actual != null ? h("small", {}, ` actual: ${v.actual}`) : "",
      ),
    ),
  );
}

async function section(root, title, feats, path, render) {
  const box = h("section", { class: "panel" }, h("h3", {}, title));
  root.append(box);
  const shape = path.replace(/\/\d+\//, "/{}/").replace(/\?.*$/, "");
  if (!feats.has("GET", shape)) {
    box.append(h("p", { class: "muted" }, "not available"));
    return;
  }
  try {
    box.append(render(parseList(await api("GET", path))));
  } catch (err) {
    box.append(h("p", { class: err.status === 404 ? "muted" : "error" }, err.status === 404 ? "not available" : err.message));
  }
}

async function drawChart(svg, note, id, window) {
  const to = Date.now();
  const from = to - WINDOWS[window];
  const since = new Date(from).toISOString();
  const checks = await api("GET", `/devices/${id}/checks?limit=${LIMIT}&since=${encodeURIComponent(since)}`);
  latencyChart(
    svg,
    checks.map((c) => ({ t: Date.parse(c.checked_at), v: c.latency_ms, outcome: checkOutcome(c) })),
    { from: checks.length >= LIMIT ? Date.parse(checks[checks.length - 1].checked_at) : from, to },
  );
  note.textContent = checks.length >= LIMIT ? `the latest ${LIMIT} checks` : `${checks.length} checks`;
}

export async function showDevice(id, root) {
  current = { id, window: current?.id === id ? current.window : "24h" };
  root.replaceChildren(h("p", { class: "muted" }, "loading…"));
  let device;
  try {
    device = await api("GET", `/devices/${id}`);
  } catch (err) {
    root.replaceChildren(h("p", { class: "error" }, err.status === 404 ? `No device ${id}.` : err.message), h("a", { href: "#/" }, "back"));
    return;
  }
  const feats = await features();
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "latency");
  const note = h("small", { class: "muted" });
  const picker = h("div", { class: "windows", role: "group", "aria-label": "window" });
  for (const w of Object.keys(WINDOWS)) {
    const b = h("button", { type: "button", "data-window": w, "aria-pressed": String(w === current.window) }, w);
    b.addEventListener("click", () => {
      current.window = w;
      for (const other of picker.children) other.setAttribute("aria-pressed", String(other === b));
      drawChart(svg, note, id, w).catch((err) => (note.textContent = err.message));
    });
    picker.append(b);
  }
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← all devices")),
    h("h2", {}, device.name, " ", h("small", { class: "address" }, device.address)),
    h("section", { class: "panel" }, h("h3", {}, "Latency"), picker, svg, note),
  );
  await drawChart(svg, note, id, current.window).catch((err) => (note.textContent = err.message));
  await section(root, "Incidents", feats, `/devices/${id}/incidents`, (items) =>
    items.length
      ? table(
          ["Started", "Ended", "Cause"],
          items.map((i) => [i.started_at || i.start || i.since || "", i.ended_at || i.end || "open", i.cause || ""]),
        )
      : h("p", { class: "muted" }, "No incidents."),
  );
  await section(root, "State changes", feats, `/devices/${id}/state-changes`, (items) =>
    items.length
      ? table(
          ["At", "From", "To", "Cause"],
          items.map((c) => [c.at || "", stateWord(c.from_state || c.from || "?"), stateWord(c.to_state || c.to || "?"), c.cause || ""]),
        )
      : h("p", { class: "muted" }, "No state changes yet."),
  );
  const recent = h("section", { class: "panel" }, h("h3", {}, "Recent results"));
  root.append(recent);
  try {
    const checks = await api("GET", `/devices/${id}/checks?limit=20`);
    recent.append(
      checks.length
        ? table(
            ["Checked", "Outcome", "Latency", "Code", "Conditions"],
            checks.map((c) => [
              c.checked_at,
              stateWord(checkOutcome(c)),
              c.latency_ms != null ? `${Math.round(c.latency_ms)} ms` : "—",
              c.status_code != null ? String(c.status_code) : "—",
              verdictList(c),
            ]),
          )
        : h("p", { class: "muted" }, "No results yet."),
    );
  } catch (err) {
    recent.append(h("p", { class: "error" }, err.message));
  }
}
