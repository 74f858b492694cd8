// The add / edit dialog: every device field, the API's 422 shown beside its field,
// "Test this check" (POST /devices/validate). Only what the user set is sent: a field left
// empty keeps the server's default (and a server without that field is not sent it).

import { api, fieldErrors, features } from "./api.js";

const TEXT = ["name", "address", "method", "body", "snoozed_until"];
const INTS = ["interval_seconds", "failure_threshold", "success_threshold", "retry_interval_seconds", "reminder_every_minutes"];
const FLOATS = ["timeout_seconds"];
const LINES = ["conditions", "degraded_when"];
const LISTS = { channel_ids: Number, notify_on: String };
const BOOLS = { is_active: true, public: false, public_details: false, follow_redirects: true, verify_tls: true };
const FIELDS = [...TEXT, ...INTS, ...FLOATS, ...LINES, ...Object.keys(LISTS), ...Object.keys(BOOLS), "headers"];

let editing = null; // the device being edited, or null for a new one

// A new device is probed every minute unless the user says otherwise: the server's
// default (MONITOR_PERIOD_SECONDS, an hour out of the box) is shown as the placeholder.
const NEW_INTERVAL_SECONDS = 60;
let period = null;

async function defaultPeriod() {
  if (period === null) {
    period = features()
      .then((feats) => (feats.has("GET", "/tasks/run/background") ? api("GET", "/tasks/run/background") : null))
      .then((state) => state?.period_seconds ?? null)
      .catch(() => null);
  }
  return period;
}

const form = () => document.getElementById("device-form");

function fill(device) {
  const f = form();
  f.reset();
  for (const name of [...TEXT, ...INTS, ...FLOATS]) f.elements[name].value = device?.[name] ?? "";
  for (const name of LINES) f.elements[name].value = (device?.[name] || []).join("\n");
  for (const name of Object.keys(LISTS)) f.elements[name].value = (device?.[name] || []).join(", ");
  for (const [name, dflt] of Object.entries(BOOLS)) f.elements[name].checked = device?.[name] ?? dflt;
  f.elements.headers.value = Object.entries(device?.headers || {})
    .map(([k, v]) => `${k}: ${v}`)
    .join("\n");
  if (!device) f.elements.interval_seconds.value = String(NEW_INTERVAL_SECONDS);
}

// The form as the API's body; {body, errors} where errors are the ones found here.
function read() {
  const f = form();
  const body = {};
  const errors = {};
  for (const name of TEXT) {
    const value = f.elements[name].value.trim();
    if (value) body[name] = value;
  }
  for (const name of [...INTS, ...FLOATS]) {
    const value = f.elements[name].value.trim();
    if (!value) continue;
    const number = Number(value);
    if (!Number.isFinite(number) || (INTS.includes(name) && !Number.isInteger(number))) errors[name] = "a number is needed";
    else body[name] = number;
  }
  for (const name of LINES) {
    const lines = f.elements[name].value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (lines.length) body[name] = lines;
  }
  for (const [name, cast] of Object.entries(LISTS)) {
    const items = f.elements[name].value.split(",").map((s) => s.trim()).filter(Boolean);
    if (items.length) body[name] = items.map(cast);
  }
  for (const [name, dflt] of Object.entries(BOOLS)) {
    const checked = f.elements[name].checked;
    if (checked !== dflt || (editing && editing[name] !== undefined)) body[name] = checked;
  }
  const headers = {};
  for (const line of f.elements.headers.value.split("\n")) {
    if (!line.trim()) continue;
    const at = line.indexOf(":");
    if (at <= 0) errors.headers = `"${line.trim()}" is not "Name: value"`;
    else headers[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  if (Object.keys(headers).length) body.headers = headers;
  return { body, errors };
}

// On edit, only what changed (a field emptied goes back to its default: null).
function changes(body) {
  const out = {};
  for (const name of FIELDS) {
    const before = editing[name] ?? null;
    const after = body[name] ?? null;
    if (JSON.stringify(before) !== JSON.stringify(after)) {
      if (after === null && (name === "name" || name === "address")) continue;
      out[name] = after;
    }
  }
  return out;
}

function showErrors(errors) {
  const f = form();
  for (const slot of f.querySelectorAll("[data-error-for]")) {
    const msg = errors[slot.dataset.errorFor];
    slot.textContent = msg || "";
    slot.hidden = !msg;
    const input = f.elements[slot.dataset.errorFor];
    if (input && input.setAttribute) input.setAttribute("aria-invalid", msg ? "true" : "false");
  }
}

export function openDeviceForm(device) {
  editing = device;
  fill(device);
  showErrors({});
  const result = document.getElementById("validate-result");
  result.hidden = true;
  document.getElementById("device-dialog-title").textContent = device ? `Edit ${device.name}` : "Add device";
  document.getElementById("device-dialog").showModal();
  const interval = form().elements.interval_seconds;
  defaultPeriod().then((seconds) => {
    interval.placeholder = seconds ? `server default: ${seconds} s` : "server default";
  });
}

async function save(event) {
  event.preventDefault();
  const { body, errors } = read();
  if (Object.keys(errors).length) return showErrors(errors);
  try {
    const saved = editing
      ? await api("PATCH", `/devices/${editing.id}`, changes(body))
      : await api("POST", "/devices", body);
    showErrors({});
    document.getElementById("device-dialog").close();
    window.dispatchEvent(new CustomEvent("fleetprobe:saved", { detail: { device: saved, created: !editing } }));
  } catch (err) {
    showErrors(err.status === 422 ? fieldErrors(err.detail, FIELDS) : { _general: err.message });
  }
}

async function validate() {
  const out = document.getElementById("validate-result");
  out.hidden = false;
  out.className = "result";
  const feats = await features();
  if (!feats.has("POST", "/devices/validate")) {
    out.textContent = "Testing a check is not available on this server.";
    out.classList.add("muted");
    return;
  }
  const { body, errors } = read();
  if (Object.keys(errors).length) return showErrors(errors);
  out.textContent = "testing…";
  try {
    // Editing: the stored device's "***" header values are tested as stored.
    const path = editing ? `/devices/validate?device_id=${editing.id}` : "/devices/validate";
    const answer = await api("POST", path, body);
    showErrors({});
    const verdicts = (answer.verdicts || answer.result?.verdicts || [])
      .map((v) => `${v.success ? "✓" : "✗"} ${v.condition}${v.actual != null ? ` (${v.actual})` : ""}`)
      .join("; ");
    const outcome = answer.outcome || answer.result?.outcome || (answer.valid === false ? "invalid" : "ok");
    out.textContent = `${outcome}${verdicts ? `: ${verdicts}` : ""}`;
    out.classList.add(`state-${outcome}`);
  } catch (err) {
    if (err.status === 422) {
      showErrors(fieldErrors(err.detail, FIELDS));
      out.textContent = "The check is not valid: see the fields.";
    } else if (err.status === 404) {
      out.textContent = "Testing a check is not available on this server.";
      out.classList.add("muted");
    } else {
      out.textContent = `Test failed: ${err.message}`;
    }
  }
}

form().addEventListener("submit", save);
document.getElementById("validate-device").addEventListener("click", validate);
document.getElementById("cancel-device").addEventListener("click", () => document.getElementById("device-dialog").close());
