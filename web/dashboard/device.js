// The device page (#/devices/N): latency over 24 h / 7 d / 30 d with the uptimes, its
// alerts (snooze, maintenance, recent notifications, followed live), incidents, state
// changes, recent results with each condition's verdict. Routes this server lacks show
// "not available".

import { api, features } from "./api.js";
import { latencyChart } from "./charts.js";
import { h } from "./dom.js";
import {
  checkOutcome,
  deviceFlags,
  formatUptime,
  notificationLabel,
  parseList,
  parseUptime,
  parseWindows,
} from "./parse.js";

const WINDOWS = { "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
const LIMIT = 1000;
const NOTIFICATIONS = 20;
const SNOOZES = [["15 min", 15], ["1 h", 60], ["4 h", 240], ["1 day", 1440], ["1 week", 10080]];
let current = null; // the page shown: {id, window, device, refresh (draws its alerts again)}

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

// A panel filled from one list route; returns a function that fills it again (the live
// feed calls it). A route this server lacks shows "not available".
function section(root, title, feats, path, render) {
  const box = h("section", { class: "panel" }, h("h3", {}, title));
  root.append(box);
  const shape = path.replace(/\/\d+\//, "/{}/").replace(/\?.*$/, "");
  let asked = 0; // the latest fill: an older answer arriving later is dropped
  return async () => {
    const mine = ++asked;
    let body;
    if (!feats.has("GET", shape)) {
      body = h("p", { class: "muted" }, "not available");
    } else {
      try {
        body = render(parseList(await api("GET", path)));
      } catch (err) {
        body = h("p", { class: err.status === 404 ? "muted" : "error" }, err.status === 404 ? "not available" : err.message);
      }
    }
    if (mine === asked) box.replaceChildren(box.firstChild, body);
  };
}

// The chart's time axis: the window, or from a little before the oldest check when the
// checks cover less than a quarter of it (a device added minutes ago is drawn over those
// minutes, not as one line at the right edge of a day). Pure.
export function chartSpan(times, from, to) {
  if (!times.length) return from;
  const oldest = Math.min(...times);
  if (to - oldest >= (to - from) / 4) return from;
  return Math.max(from, oldest - Math.max(60e3, (to - oldest) * 0.05));
}

async function drawChart(svg, note, id, window) {
  const mine = (svg.asked = (svg.asked || 0) + 1); // an older answer arriving later is dropped
  const to = Date.now();
  const from = to - WINDOWS[window];
  const since = new Date(from).toISOString();
  const checks = await api("GET", `/devices/${id}/checks?limit=${LIMIT}&since=${encodeURIComponent(since)}`);
  if (mine !== svg.asked) return;
  const times = checks.map((c) => Date.parse(c.checked_at));
  // At the limit: the axis starts at the oldest check fetched (older ones exist).
  const start = checks.length >= LIMIT ? Math.min(...times) : chartSpan(times, from, to);
  latencyChart(
    svg,
    checks.map((c, i) => ({ t: times[i], v: c.latency_ms, outcome: checkOutcome(c) })),
    { from: start, to },
  );
  const n = checks.length;
  const count = n >= LIMIT ? `the latest ${LIMIT} checks` : `${n} check${n === 1 ? "" : "s"}`;
  note.textContent = start > from && n < LIMIT ? `${count}, all since ${when(new Date(start).toISOString())}` : count;
}

async function drawUptime(out, id, feats) {
  if (!feats.has("GET", "/devices/{}/uptime")) return;
  try {
    const up = parseUptime(await api("GET", `/devices/${id}/uptime?windows=24h,7d,30d`));
    out.textContent = `Uptime: ${Object.keys(WINDOWS)
      .map((w) => `${w} ${formatUptime(up[w]) ?? "—"}`)
      .join(" · ")}`;
  } catch (err) {
    out.textContent = `Uptime: ${err.message}`;
  }
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : "—";
}

// The alerts panel: snoozed or not (with the buttons to change it), the maintenance windows
// in force over it, its latest notifications. Drawn again by the live feed.
let alertsDrawn = 0; // the latest drawAlerts call: an older one answered later is dropped

async function drawAlerts(box, device, feats) {
  const mine = ++alertsDrawn;
  const parts = [h("h3", {}, "Alerts")];
  const now = Date.now();
  let windows = [];
  if (feats.has("GET", "/maintenance")) {
    try {
      windows = parseWindows(await api("GET", "/maintenance"));
    } catch (err) {
      parts.push(h("p", { class: "error" }, `maintenance: ${err.message}`));
    }
  }
  const flags = deviceFlags(device, windows, now);
  const snoozed = flags.some((f) => f.word === "snoozed");
  const status = h(
    "p",
    { class: "alert-state" },
    flags.length ? flags.map((f) => f.title).join("; ") : "Alerts on: not snoozed, not in maintenance.",
  );
  parts.push(status);
  if (feats.has("POST", "/devices/{}/snooze")) {
    const choice = h("select", { name: "snooze-for", "aria-label": "snooze for" });
    for (const [label, minutes] of SNOOZES) choice.append(h("option", { value: String(minutes) }, label));
    choice.value = "60";
    const out = h("output", { class: "snooze-result" });
    const snooze = h("button", { type: "button", "data-action": "snooze" }, snoozed ? "Snooze longer" : "Snooze");
    const wake = h("button", { type: "button", "data-action": "unsnooze" }, "End snooze");
    wake.disabled = !snoozed;
    const run = async (method, body) => {
      out.textContent = "…";
      try {
        const answer = await api(method, `/devices/${device.id}/snooze`, body);
        current.device = { ...current.device, snoozed_until: answer.snoozed_until };
        window.dispatchEvent(new CustomEvent("fleetprobe:device", { detail: current.device }));
        await drawAlerts(box, current.device, feats);
      } catch (err) {
        out.textContent = err.message;
        out.className = "snooze-result error";
      }
    };
    snooze.addEventListener("click", () =>
      run("POST", { until: new Date(Date.now() + Number(choice.value) * 60e3).toISOString() }),
    );
    wake.addEventListener("click", () => run("DELETE"));
    parts.push(h("div", { class: "inline" }, choice, snooze, wake, out));
  }
  parts.push(h("h4", {}, "Recent notifications"));
  if (!feats.has("GET", "/notifications")) {
    parts.push(h("p", { class: "muted" }, "not available"));
  } else {
    try {
      const [list, channels] = await Promise.all([
        api("GET", `/notifications?device_id=${device.id}&limit=${NOTIFICATIONS}`),
        feats.has("GET", "/channels") ? api("GET", "/channels").catch(() => []) : [],
      ]);
      const names = new Map(channels.map((c) => [c.id, c.name]));
      parts.push(
        list.length
          ? table(
              ["When", "Status", "Channel", "Attempts", "Detail"],
              list.map((n) => [
                when(n.sent_at || n.updated_at || n.created_at),
                h("span", { class: `notif notif-${n.status}` }, notificationLabel(n)),
                names.get(n.channel_id) ?? `channel ${n.channel_id}`,
                String(n.attempts),
                [n.response_code != null ? `HTTP ${n.response_code}` : "", n.error || "", n.reason || ""]
                  .filter(Boolean)
                  .join(" · ") || "—",
              ]),
            )
          : h("p", { class: "muted" }, "No notifications yet."),
      );
    } catch (err) {
      parts.push(h("p", { class: "error" }, err.message));
    }
  }
  if (mine === alertsDrawn) box.replaceChildren(...parts);
}

// The live feed, while a device page is open: its notifications, snooze and maintenance,
// its new results and state changes.
const FOLLOWED = new Set(["notification.sent", "notification.failed", "maintenance.started", "maintenance.ended"]);
window.addEventListener("fleetprobe:event", ({ detail: { type, deviceId, payload } }) => {
  if (!current?.refresh || document.getElementById("device-view").hidden) return;
  const mine = deviceId === current.id;
  if (type === "device.updated" && mine) {
    current.device = payload;
    current.refresh();
  } else if (FOLLOWED.has(type) && (mine || type.startsWith("maintenance."))) {
    current.refresh();
  } else if (mine && type === "check.created") {
    soon(current, "results");
  } else if (mine && type === "device.state_changed") {
    soon(current, "history");
  }
});

// page[what]() within a second, once however many events asked for it meanwhile.
function soon(page, what) {
  if (page.pending[what] || !page[what]) return;
  page.pending[what] = setTimeout(() => {
    page.pending[what] = 0;
    if (current === page) page[what]();
  }, 1000);
}

export async function showDevice(id, root) {
  const me = {
    id,
    window: current?.id === id ? current.window : "24h",
    device: null,
    refresh: null,
    results: null,
    history: null,
    pending: {},
  };
  current = me;
  root.replaceChildren(h("p", { class: "muted" }, "loading…"));
  let device;
  try {
    device = await api("GET", `/devices/${id}`);
  } catch (err) {
    root.replaceChildren(h("p", { class: "error" }, err.status === 404 ? `No device ${id}.` : err.message), h("a", { href: "#/" }, "back"));
    return;
  }
  const feats = await features();
  if (current !== me) return; // another page was opened meanwhile
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
  const uptime = h("p", { class: "uptime" });
  const alerts = h("section", { class: "panel", id: "device-alerts" }, h("h3", {}, "Alerts"));
  root.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← all devices")),
    h("h2", {}, device.name, " ", h("small", { class: "address" }, device.address)),
    h("section", { class: "panel" }, h("h3", {}, "Latency"), picker, svg, note, uptime),
    alerts,
  );
  me.device = device;
  me.refresh = () => drawAlerts(alerts, me.device, feats);
  await Promise.all([
    drawChart(svg, note, id, me.window).catch((err) => (note.textContent = err.message)),
    drawUptime(uptime, id, feats),
    me.refresh(),
  ]);
  const incidents = section(root, "Incidents", feats, `/devices/${id}/incidents`, (items) =>
    items.length
      ? table(
          ["Started", "Ended", "Cause"],
          items.map((i) => [when(i.started_at || i.start || i.since), i.ended_at || i.end ? when(i.ended_at || i.end) : "open", i.cause || ""]),
        )
      : h("p", { class: "muted" }, "No incidents."),
  );
  const changes = section(root, "State changes", feats, `/devices/${id}/state-changes`, (items) =>
    items.length
      ? table(
          ["At", "From", "To", "Cause"],
          items.map((c) => [when(c.at), stateWord(c.from_state || c.from || "?"), stateWord(c.to_state || c.to || "?"), c.cause || ""]),
        )
      : h("p", { class: "muted" }, "No state changes yet."),
  );
  const recent = section(root, "Recent results", feats, `/devices/${id}/checks?limit=20`, (checks) =>
    checks.length
      ? table(
          ["Checked", "Outcome", "Latency", "Code", "Conditions"],
          checks.map((c) => [
            when(c.checked_at),
            stateWord(checkOutcome(c)),
            c.latency_ms != null ? `${Math.round(c.latency_ms)} ms` : "—",
            c.status_code != null ? String(c.status_code) : "—",
            verdictList(c),
          ]),
        )
      : h("p", { class: "muted" }, "No results yet."),
  );
  // Followed live: a new result draws the chart and the results again, a state change the
  // uptime, incidents and state changes (each at most once a second).
  me.results = () =>
    Promise.all([drawChart(svg, note, id, me.window).catch((err) => (note.textContent = err.message)), recent()]);
  me.history = () => Promise.all([drawUptime(uptime, id, feats), incidents(), changes()]);
  await Promise.all([incidents(), changes(), recent()]);
}
