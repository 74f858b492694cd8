// The dashboard: the device table (one row per device, each updated in place by its own
// events), the hash routes (#/, #/devices/N, #/recorders) and the live feed.

import { api, features } from "./api.js";
import { sparkline } from "./charts.js";
import { showDevice } from "./device.js";
import { openDeviceForm } from "./form.js";
import { follow } from "./live.js";
import { checkOutcome, checkSummary, formatSince, formatUptime, parseStatus, parseUptime } from "./parse.js";
import { showRecorders } from "./recorder.js";

const SPARK_POINTS = 30;
const PAGE = 1000;
const models = new Map(); // device id -> {device, checks (oldest first), health, uptime}
const rows = new Map(); // device id -> <tr>
let feats = null;

const $ = (id) => document.getElementById(id);

function cell(row, name) {
  return row.querySelector(`[data-cell="${name}"]`);
}

function stateOf(model) {
  if (!model.device.is_active) return { state: "paused", since: model.health?.since ?? model.device.updated_at };
  if (model.health?.state) return model.health;
  const checks = model.checks;
  if (!checks.length) return { state: "unknown", since: null };
  const state = checkOutcome(checks[checks.length - 1]);
  let since = checks[checks.length - 1].checked_at;
  for (let i = checks.length - 1; i >= 0 && checkOutcome(checks[i]) === state; i -= 1) since = checks[i].checked_at;
  return { state, since };
}

function newRow(id) {
  const row = document.createElement("tr");
  row.dataset.id = String(id);
  row.innerHTML = `
    <td data-cell="name"><a class="name"></a><small class="address"></small></td>
    <td data-cell="state"><span class="state"></span></td>
    <td data-cell="since"></td>
    <td data-cell="latency"></td>
    <td data-cell="spark"><svg class="spark" role="img" aria-label="recent latency"></svg></td>
    <td data-cell="up24"></td>
    <td data-cell="up30"></td>
    <td data-cell="actions">
      <button type="button" data-action="probe">Probe now</button>
      <button type="button" data-action="edit">Edit</button>
      <button type="button" data-action="pause"></button>
      <button type="button" data-action="delete" class="danger">Delete</button>
      <output class="probe-result"></output>
    </td>`;
  return row;
}

function uptimeCell(td, value, available) {
  const text = formatUptime(value);
  td.textContent = text ?? (available ? "—" : "n/a");
  td.classList.toggle("muted", text === null);
  if (!available) td.title = "not available on this server";
}

export function renderRow(id) {
  const model = models.get(id);
  if (!model) return;
  let row = rows.get(id);
  if (!row) {
    row = newRow(id);
    rows.set(id, row);
    $("devices").tBodies[0].append(row);
  }
  const { device } = model;
  const name = cell(row, "name").querySelector("a");
  name.textContent = device.name;
  name.href = `#/devices/${id}`;
  cell(row, "name").querySelector(".address").textContent = device.address;
  const { state, since } = stateOf(model);
  const badge = cell(row, "state").querySelector(".state");
  badge.className = `state state-${state}`;
  badge.textContent = state;
  row.dataset.state = state;
  cell(row, "since").textContent = formatSince(since);
  cell(row, "since").title = since || "";
  const last = model.checks[model.checks.length - 1];
  cell(row, "latency").textContent = last && last.latency_ms != null ? `${Math.round(last.latency_ms)} ms` : "—";
  sparkline(
    cell(row, "spark").querySelector("svg"),
    model.checks.map((c) => c.latency_ms ?? null),
    model.checks.map(checkOutcome),
  );
  uptimeCell(cell(row, "up24"), model.uptime["24h"], model.uptimeKnown);
  uptimeCell(cell(row, "up30"), model.uptime["30d"], model.uptimeKnown);
  row.querySelector('[data-action="pause"]').textContent = device.is_active ? "Pause" : "Resume";
  applyFilter(row);
}

function removeRow(id) {
  models.delete(id);
  rows.get(id)?.remove();
  rows.delete(id);
  updateCounts();
}

function applyFilter(row) {
  const text = $("filter").value.trim().toLowerCase();
  const state = $("state-filter").value;
  const model = models.get(Number(row.dataset.id));
  const hay = model ? `${model.device.name} ${model.device.address}`.toLowerCase() : "";
  row.hidden = (text && !hay.includes(text)) || (state && row.dataset.state !== state);
}

function updateCounts() {
  const counts = {};
  for (const row of rows.values()) counts[row.dataset.state] = (counts[row.dataset.state] || 0) + 1;
  $("counts").textContent = Object.entries(counts)
    .map(([s, n]) => `${n} ${s}`)
    .join(" · ");
  $("empty").hidden = rows.size > 0;
}

function addCheck(model, check) {
  if (model.checks.some((c) => (c.id != null && c.id === check.id) || (c.run_key && c.run_key === check.run_key))) return;
  model.checks.push(check);
  model.checks.sort((a, b) => Date.parse(a.checked_at) - Date.parse(b.checked_at));
  if (model.checks.length > SPARK_POINTS) model.checks.splice(0, model.checks.length - SPARK_POINTS);
}

function modelFor(device) {
  const existing = models.get(device.id);
  if (existing) {
    existing.device = device;
    return existing;
  }
  const model = { device, checks: [], health: null, uptime: {}, uptimeKnown: false };
  models.set(device.id, model);
  return model;
}

async function pool(items, size, work) {
  const queue = [...items];
  const runners = Array.from({ length: Math.min(size, queue.length) }, async () => {
    while (queue.length) await work(queue.shift());
  });
  await Promise.all(runners);
}

async function loadDevice(id) {
  const model = models.get(id);
  if (!model) return;
  try {
    const checks = await api("GET", `/devices/${id}/checks?limit=${SPARK_POINTS}`);
    for (const check of checks) addCheck(model, check);
    if (feats.has("GET", "/devices/{}/uptime")) {
      model.uptime = { ...model.uptime, ...parseUptime(await api("GET", `/devices/${id}/uptime?windows=24h,30d`)) };
      model.uptimeKnown = true;
    }
  } catch (err) {
    if (err.status !== 404) console.warn("device", id, err.message);
  }
  renderRow(id);
}

export async function loadAll() {
  feats = feats || (await features());
  const devices = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await api("GET", `/devices?limit=${PAGE}&offset=${offset}`);
    devices.push(...page);
    if (page.length < PAGE) break;
  }
  const seen = new Set(devices.map((d) => d.id));
  for (const id of [...models.keys()]) if (!seen.has(id)) removeRow(id);
  for (const device of devices) {
    modelFor(device);
    renderRow(device.id);
  }
  if (feats.has("GET", "/status")) {
    const status = parseStatus(await api("GET", "/status"));
    for (const [id, item] of status) {
      const model = models.get(id);
      if (!model) continue;
      if (item.state) model.health = { state: item.state, since: item.since };
      if (item.lastCheck) addCheck(model, { ...item.lastCheck, device_id: id });
      if (item.uptime24h != null) {
        model.uptime["24h"] = item.uptime24h;
        model.uptimeKnown = true;
      }
      renderRow(id);
    }
  }
  updateCounts();
  await pool(devices.map((d) => d.id), 6, loadDevice);
  updateCounts();
}

function onEvent({ type, deviceId, payload }) {
  if (type === "device.created" || type === "device.updated") {
    modelFor(payload);
    renderRow(payload.id);
    if (type === "device.created") loadDevice(payload.id);
  } else if (type === "device.deleted") {
    removeRow(payload.id);
    return;
  } else if (type === "check.created") {
    const model = models.get(deviceId);
    if (!model) return;
    addCheck(model, payload);
    renderRow(deviceId);
  } else if (type === "device.state_changed") {
    const model = models.get(deviceId);
    if (!model) return;
    model.health = { state: payload.to, since: payload.since };
    renderRow(deviceId);
  } else {
    return;
  }
  updateCounts();
  window.dispatchEvent(new CustomEvent("fleetprobe:event", { detail: { type, deviceId, payload } }));
}

async function onAction(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const row = button.closest("tr");
  const id = Number(row.dataset.id);
  const model = models.get(id);
  const out = row.querySelector(".probe-result");
  const action = button.dataset.action;
  try {
    if (action === "probe") {
      out.textContent = "probing…";
      out.className = "probe-result";
      const answer = await api("POST", "/jobs/probe?wait=true", { device_ids: [id] });
      const result = (answer.results || []).find((r) => r.device_id === id);
      if (result) {
        addCheck(model, result);
        renderRow(id);
        out.textContent = checkSummary(result);
        out.className = `probe-result state-${checkOutcome(result)}`;
      } else {
        out.textContent = answer.complete ? "no result" : "queued; the result will appear when stored";
      }
    } else if (action === "edit") {
      openDeviceForm(model.device);
    } else if (action === "pause") {
      const changed = await api("PATCH", `/devices/${id}`, { is_active: !model.device.is_active });
      modelFor(changed);
      renderRow(id);
    } else if (action === "delete") {
      if (!window.confirm(`Delete ${model.device.name}? Its history goes with it.`)) return;
      await api("DELETE", `/devices/${id}`);
      removeRow(id);
    }
  } catch (err) {
    out.textContent = `${action} failed: ${err.message}`;
    out.className = "probe-result error";
  }
}

function setConn(status) {
  const conn = $("conn");
  conn.textContent = status;
  conn.className = `conn conn-${status}`;
}

function route() {
  const hash = window.location.hash || "#/";
  const device = hash.match(/^#\/devices\/(\d+)$/);
  $("list-view").hidden = Boolean(device) || hash === "#/recorders";
  $("device-view").hidden = !device;
  $("recorder-view").hidden = hash !== "#/recorders";
  if (device) showDevice(Number(device[1]), $("device-view"));
  if (hash === "#/recorders") showRecorders($("recorder-view"));
}

function start() {
  $("filter").addEventListener("input", () => rows.forEach(applyFilter));
  $("state-filter").addEventListener("change", () => rows.forEach(applyFilter));
  $("devices").addEventListener("click", onAction);
  $("add-device").addEventListener("click", () => openDeviceForm(null));
  window.addEventListener("hashchange", route);
  window.addEventListener("fleetprobe:saved", (event) => {
    modelFor(event.detail);
    renderRow(event.detail.id);
    updateCounts();
    loadDevice(event.detail.id);
  });
  // Refresh the "since" words and the uptimes now and then, cell by cell.
  setInterval(() => {
    for (const id of models.keys()) renderRow(id);
  }, 30000);
  route();
  reload();
  // Every (re)connection catches up with what the feed missed while it was away.
  follow({ onEvent, onStatus: setConn, onOpen: reload });
}

let loading = null;
let again = false;

function reload() {
  if (loading) {
    again = true;
    return;
  }
  loading = loadAll()
    .then(() => {
      $("list-error").hidden = true;
    })
    .catch((err) => {
      $("list-error").hidden = false;
      $("list-error").textContent = `Could not load devices: ${err.message}`;
    })
    .finally(() => {
      loading = null;
      if (again) {
        again = false;
        reload();
      }
    });
}

start();
