// The dashboard: the device table (one row per device, each updated in place by its own
// events), the hash routes (#/, #/devices/N, #/recorders) and the live feed.
//
// 1,000 devices stay smooth: an event marks its device's row dirty and the dirty rows are
// drawn once per animation frame (a burst of events costs one pass over the rows it
// touched, and the counts are summed once per frame, not once per event); a row is built
// once and then only the cells whose text changed are written, so the table is never
// re-rendered and an untouched row is never written to.

import { api, features } from "./api.js";
import { sparkline } from "./charts.js";
import { showDevice } from "./device.js";
import { openDeviceForm } from "./form.js";
import { follow } from "./live.js";
import {
  checkOutcome,
  checkSummary,
  deviceFlags,
  formatSince,
  formatUptime,
  parseStatus,
  parseWindows,
} from "./parse.js";
import { showRecorders } from "./recorder.js";

const SPARK_POINTS = 30;
const PAGE = 1000;
// The uptimes read again from /status (no per-device request): a while after state
// changes (a burst of them costs one read) and every minute while the feed is live.
const REFRESH_AFTER_CHANGE_MS = 2000;
const REFRESH_EVERY_MS = 60000;
// device id -> {device, checks (oldest first), health, uptime, drawn}
const models = new Map();
const rows = new Map(); // device id -> Row
let windows = []; // the maintenance windows in force now: [{id, name, deviceIds, until}]
let feats = null;

const $ = (id) => document.getElementById(id);

function stateOf(model) {
  if (!model.device.is_active) return { state: "paused", since: model.health?.since ?? model.device.updated_at };
  if (model.health?.state) return model.health;
  // A server with health (/status) says "unknown" until its thresholds decide: a device
  // added since the page loaded is not judged here from its latest result.
  if (hasStatus()) return { state: "unknown", since: null };
  const checks = model.checks;
  if (!checks.length) return { state: "unknown", since: null };
  const state = checkOutcome(checks[checks.length - 1]);
  let since = checks[checks.length - 1].checked_at;
  for (let i = checks.length - 1; i >= 0 && checkOutcome(checks[i]) === state; i -= 1) since = checks[i].checked_at;
  return { state, since };
}

// One row: its <tr>, the elements it writes to (found once) and what each last got, so
// that a value written again is not written, and not even read back from the DOM.
class Row {
  constructor(id) {
    const tr = document.createElement("tr");
    tr.dataset.id = String(id);
    tr.innerHTML = `
      <td data-cell="name"><a class="name"></a><small class="address"></small></td>
      <td data-cell="state"><span class="state"></span><small class="flags"></small></td>
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
    const q = (selector) => tr.querySelector(selector);
    this.tr = tr;
    this.el = {
      row: tr,
      name: q(".name"),
      address: q(".address"),
      badge: q(".state"),
      flags: q(".flags"),
      since: q('[data-cell="since"]'),
      latency: q('[data-cell="latency"]'),
      spark: q("svg.spark"),
      up24: q('[data-cell="up24"]'),
      up30: q('[data-cell="up30"]'),
      pause: q('[data-action="pause"]'),
    };
    this.last = {};
  }

  text(key, value) {
    if (this.last[key] === value) return;
    this.last[key] = value;
    this.el[key].textContent = value;
  }

  attr(key, name, value) {
    const k = `${key}@${name}`;
    if (this.last[k] === value) return;
    this.last[k] = value;
    this.el[key].setAttribute(name, value);
  }
}

function uptimeCell(r, key, value, available) {
  const text = formatUptime(value);
  r.text(key, text ?? (available ? "—" : "n/a"));
  r.attr(key, "class", text === null ? "muted" : "");
  r.attr(key, "title", available ? "" : "not available on this server");
}

function renderRow(id) {
  const model = models.get(id);
  if (!model) return;
  let r = rows.get(id);
  if (!r) {
    r = new Row(id);
    rows.set(id, r);
    $("devices").tBodies[0].append(r.tr);
  }
  const { device } = model;
  r.text("name", device.name);
  r.attr("name", "href", `#/devices/${id}`);
  r.text("address", device.address);
  const { state, since } = stateOf(model);
  r.attr("badge", "class", `state state-${state}`);
  r.text("badge", state);
  r.attr("row", "data-state", state);
  const flags = deviceFlags(device, windows, Date.now());
  r.text("flags", flags.map((f) => f.word).join(" · "));
  r.attr("flags", "title", flags.map((f) => f.title).join("; "));
  r.attr("row", "data-flags", flags.map((f) => f.word).join(","));
  r.text("since", formatSince(since));
  r.attr("since", "title", since || "");
  const last = model.checks[model.checks.length - 1];
  r.text("latency", last && last.latency_ms != null ? `${Math.round(last.latency_ms)} ms` : "—");
  // The sparkline is redrawn only when the checks it draws changed.
  const drawn = model.checks.map((c) => `${c.checked_at}:${c.latency_ms}:${checkOutcome(c)}`).join("|");
  if (r.last.spark !== drawn) {
    r.last.spark = drawn;
    sparkline(r.el.spark, model.checks.map((c) => c.latency_ms ?? null), model.checks.map(checkOutcome));
  }
  uptimeCell(r, "up24", model.uptime["24h"], hasStatus());
  uptimeCell(r, "up30", model.uptime["30d"], hasStatus());
  r.text("pause", device.is_active ? "Pause" : "Resume");
  applyFilter(r);
}

// Rows to draw at the next frame, all in that frame: the table is laid out once per frame
// whatever the number of rows written (drawing a burst over several frames, a few rows
// each, was measured slower: one layout of the whole table per frame).
const dirty = new Set();
let frame = 0;

function draw() {
  frame = 0;
  for (const id of dirty) renderRow(id);
  dirty.clear();
  updateCounts();
}

function touch(id) {
  dirty.add(id);
  if (!frame) frame = requestAnimationFrame(draw);
}

function touchAll() {
  for (const id of models.keys()) touch(id);
}

function removeRow(id) {
  models.delete(id);
  dirty.delete(id);
  rows.get(id)?.tr.remove();
  rows.delete(id);
  updateCounts();
}

function applyFilter(r) {
  const text = $("filter").value.trim().toLowerCase();
  const state = $("state-filter").value;
  const model = models.get(Number(r.tr.dataset.id));
  const hay = model ? `${model.device.name} ${model.device.address}`.toLowerCase() : "";
  const hidden = Boolean((text && !hay.includes(text)) || (state && r.last["row@data-state"] !== state));
  if (r.last.hidden !== hidden) {
    r.last.hidden = hidden;
    r.tr.hidden = hidden;
  }
}

function updateCounts() {
  const counts = {};
  for (const r of rows.values()) {
    const state = r.last["row@data-state"];
    counts[state] = (counts[state] || 0) + 1;
  }
  const text = Object.entries(counts)
    .map(([s, n]) => `${n} ${s}`)
    .join(" · ");
  if ($("counts").textContent !== text) $("counts").textContent = text;
  const empty = rows.size > 0;
  if ($("empty").hidden !== empty) $("empty").hidden = empty;
}

// The same result may come from /status (no run_key on its last_check), its recent list and
// the feed: known by its run_key, else by its time.
function sameCheck(a, b) {
  if (a.run_key && b.run_key) return a.run_key === b.run_key;
  return Date.parse(a.checked_at) === Date.parse(b.checked_at);
}

function addCheck(model, check) {
  if (model.checks.some((c) => sameCheck(c, check))) return false;
  model.checks.push(check);
  model.checks.sort((a, b) => Date.parse(a.checked_at) - Date.parse(b.checked_at));
  if (model.checks.length > SPARK_POINTS) model.checks.splice(0, model.checks.length - SPARK_POINTS);
  return true;
}

function hasStatus() {
  return Boolean(feats?.has("GET", "/status"));
}

function modelFor(device) {
  const existing = models.get(device.id);
  if (existing) {
    existing.device = device;
    return existing;
  }
  const model = { device, checks: [], health: null, uptime: {} };
  models.set(device.id, model);
  return model;
}

async function pages(path) {
  const all = [];
  for (let offset = 0; ; offset += PAGE) {
    const page = await api("GET", `${path}${path.includes("?") ? "&" : "?"}limit=${PAGE}&offset=${offset}`);
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}

// Every device's state, recent results (its sparkline), uptime (24 h, 30 d): PAGE devices
// a request, never a request per device. `full` false (a refresh): the uptimes only (the
// feed keeps states and results). Only the rows whose model changed are drawn again.
async function loadStatus(full = true) {
  if (!hasStatus()) return;
  const asked = seq;
  const status = parseStatus(await pages(full ? `/status?recent=${SPARK_POINTS}` : "/status"));
  for (const [id, item] of status) {
    const model = models.get(id);
    if (!model) continue;
    let changed = false;
    if (full && item.state && !(model.stateSeq > asked)) {
      changed = item.state !== model.health?.state || item.since !== model.health?.since;
      model.health = { state: item.state, since: item.since };
    }
    for (const check of item.recent) changed = addCheck(model, { ...check, device_id: id }) || changed;
    if (full && item.lastCheck) changed = addCheck(model, { ...item.lastCheck, device_id: id }) || changed;
    if (model.uptime["24h"] !== item.uptime24h || model.uptime["30d"] !== item.uptime30d) changed = true;
    model.uptime = { "24h": item.uptime24h, "30d": item.uptime30d };
    if (changed) touch(id);
  }
}

// The uptimes read again, one read at a time: asked during a read, one more
// follows it. Not while the feed is away (the reconnection reloads everything).
let refreshTimer = 0;
let refreshing = null;
let refreshAgain = false;

function refreshSoon(delay = REFRESH_AFTER_CHANGE_MS) {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = 0;
    refreshStatus();
  }, delay);
}

function refreshStatus() {
  if (!loaded || connStatus !== "live") return;
  if (refreshing) {
    refreshAgain = true;
    return;
  }
  refreshing = loadStatus(false)
    .catch((err) => console.warn("status refresh", err.message))
    .finally(() => {
      refreshing = null;
      if (refreshAgain) {
        refreshAgain = false;
        refreshSoon();
      }
    });
}

let windowsAsked = 0;

async function loadWindows() {
  if (!feats?.has("GET", "/maintenance")) return; // not loaded yet: the first load reads them
  const mine = ++windowsAsked;
  const answer = parseWindows(await api("GET", "/maintenance"));
  if (mine !== windowsAsked) return; // a later ask is under way: its answer is newer
  windows = answer;
  touchAll();
}

export async function loadAll() {
  feats = feats || (await features());
  const asked = seq;
  const devices = await pages("/devices");
  const seen = new Set(devices.map((d) => d.id));
  for (const [id, model] of [...models]) if (!seen.has(id) && !(model.deviceSeq > asked)) removeRow(id);
  for (const device of devices) {
    // changed or deleted since it was asked for: the event holds
    if (models.get(device.id)?.deviceSeq > asked || deletedAt.get(device.id) > asked) continue;
    modelFor(device);
    touch(device.id);
  }
  await Promise.all([loadStatus(), loadWindows().catch((err) => console.warn("maintenance", err.message))]);
  updateCounts(); // with no device at all no row is drawn: the counts and "no devices" still are
}

// Events counted as they arrive: an answer of /devices or /status asked before a device's
// latest event must not undo what that event said (the answer is older).
let seq = 0;
const deletedAt = new Map(); // device id -> seq of its device.deleted

function onEvent({ type, deviceId, payload }) {
  seq += 1;
  const model = models.get(deviceId);
  if (type === "device.created" || type === "device.updated") {
    modelFor(payload).deviceSeq = seq;
    touch(payload.id);
  } else if (type === "device.deleted") {
    deletedAt.set(payload.id, seq);
    removeRow(payload.id);
  } else if (type === "check.created" && model) {
    addCheck(model, payload);
    touch(deviceId);
  } else if (type === "device.state_changed" && model) {
    model.health = { state: payload.to, since: payload.since };
    model.stateSeq = seq;
    touch(deviceId);
    refreshSoon(); // its uptime moved
  } else if (type === "maintenance.started" || type === "maintenance.ended") {
    loadWindows().catch((err) => console.warn("maintenance", err.message));
  }
  // The device and recorder pages follow the same feed (device.js, recorder.js).
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
      await probeNow(id);
    } else if (action === "edit") {
      openDeviceForm(model.device);
    } else if (action === "pause") {
      const changed = await api("PATCH", `/devices/${id}`, { is_active: !model.device.is_active });
      modelFor(changed);
      touch(id);
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

// "Probe now" (POST /jobs/probe?wait=true): the result in the row's output, no reload.
async function probeNow(id) {
  renderRow(id); // a device just added has no row before the next frame
  const r = rows.get(id);
  if (!r) return;
  const out = r.tr.querySelector(".probe-result");
  out.textContent = "probing…";
  out.className = "probe-result";
  const answer = await api("POST", "/jobs/probe?wait=true", { device_ids: [id] });
  const result = (answer.results || []).find((x) => x.device_id === id);
  const model = models.get(id);
  if (result && model) {
    addCheck(model, result);
    touch(id);
    out.textContent = checkSummary(result);
    out.className = `probe-result state-${checkOutcome(result)}`;
  } else {
    out.textContent = answer.complete ? "no result" : "queued; the result will appear when stored";
  }
}

let connStatus = "connecting";
let wasLive = false; // a feed never opened is refused (a token asked for), not lost

function setConn(status) {
  connStatus = status;
  const conn = $("conn");
  conn.textContent = status;
  conn.className = `conn conn-${status}`;
  // A lost connection is said twice: the word in the header, and a banner over the (now
  // stale) page.
  if (status === "live") wasLive = true;
  $("offline-banner").hidden = !(status === "offline" && wasLive);
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
  // Saved by the form; a device just added is probed at once (its first result now, not
  // at its first slot, up to an interval away).
  window.addEventListener("fleetprobe:saved", (event) => {
    const { device, created } = event.detail;
    modelFor(device);
    touch(device.id);
    if (created && device.is_active) {
      probeNow(device.id).catch((err) => {
        const out = rows.get(device.id)?.tr.querySelector(".probe-result");
        if (out) {
          out.textContent = `first probe failed: ${err.message}`;
          out.className = "probe-result error";
        }
      });
    }
  });
  // A device changed by the device page (its snooze).
  window.addEventListener("fleetprobe:device", (event) => {
    modelFor(event.detail);
    touch(event.detail.id);
  });
  // The "since" words and the snoozes that ran out, now and then: only the cells whose
  // text changed are written.
  setInterval(touchAll, 30000);
  setInterval(() => {
    if (!document.hidden) refreshStatus();
  }, REFRESH_EVERY_MS);
  route();
  // Every (re)connection catches up with what the feed missed while it was away: the
  // first load, too, starts once the feed is open, so no event falls between the two.
  // A feed that cannot open still gets the page its devices.
  follow({
    onEvent,
    onOpen: reload,
    onStatus: (status) => {
      setConn(status);
      if (status === "offline" && !loaded) reload();
    },
  });
}

let loading = null;
let again = false;
let loaded = false;

function reload() {
  if (loading) {
    again = true;
    return;
  }
  loading = loadAll()
    .then(() => {
      loaded = true;
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
