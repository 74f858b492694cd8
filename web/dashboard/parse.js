// The shapes of the API answers and events the page reads, in one place: when a shape
// changes, only this module changes.

export const STATES = ["up", "degraded", "down", "unknown", "paused"];

// A check row (GET /devices/{id}/checks, POST /jobs/probe?wait=true results, the
// check.created payload): its outcome, or status_up on rows without one.
export function checkOutcome(check) {
  if (!check) return "unknown";
  if (check.outcome) return check.outcome;
  if (check.status_up === true) return "up";
  if (check.status_up === false) return "down";
  return "unknown";
}

export function checkSummary(check) {
  const outcome = checkOutcome(check);
  const parts = [outcome];
  if (check.latency_ms != null) parts.push(`${Math.round(check.latency_ms)} ms`);
  if (check.status_code != null) parts.push(`HTTP ${check.status_code}`);
  if (check.error) parts.push(check.error);
  return parts.join(" · ");
}

// GET /status?recent=N: [{device_id, name, state, since, last_check: {...}, uptime_24h,
// uptime_30d, recent: [{checked_at, run_key, outcome, status_up, latency_ms}]}] (or
// {items: [...]}). Returns Map(device_id -> {state, since, lastCheck, uptime24h, uptime30d,
// recent (oldest first)}).
export function parseStatus(body) {
  const items = Array.isArray(body) ? body : (body && (body.items || body.devices)) || [];
  const out = new Map();
  for (const item of items) {
    const id = item.device_id ?? item.id;
    if (id == null) continue;
    out.set(id, {
      state: item.state || null,
      since: item.since || null,
      lastCheck: item.last_check || null,
      uptime24h: item.uptime_24h ?? null,
      uptime30d: item.uptime_30d ?? null,
      recent: Array.isArray(item.recent) ? item.recent : [],
    });
  }
  return out;
}

// GET /devices/{id}/uptime?windows=24h,30d: [{window, uptime_percent, ...}] (or
// {windows: [...]}). Returns {window: percent|null}.
export function parseUptime(body) {
  const list = Array.isArray(body) ? body : (body && (body.windows || body.items)) || [];
  const out = {};
  for (const entry of list) out[entry.window] = entry.uptime_percent ?? null;
  return out;
}

// GET /maintenance: the windows in force now (open_until set), as
// [{id, name, mode, deviceIds (null: every device), until}].
export function parseWindows(body) {
  const list = Array.isArray(body) ? body : (body && body.items) || [];
  return list
    .filter((w) => w && w.is_active !== false && w.open_until)
    .map((w) => ({ id: w.id, name: w.name, mode: w.mode, deviceIds: w.device_ids ?? null, until: w.open_until }));
}

// What a device's alerts are up to, as words (never colour alone): "maintenance" while a
// window in force covers it, "snoozed" until its snoozed_until. [{word, title}]
export function deviceFlags(device, windows, now = Date.now()) {
  const flags = [];
  for (const w of windows) {
    if (w.deviceIds && !w.deviceIds.includes(device.id)) continue;
    if (w.until && Date.parse(w.until) <= now) continue;
    flags.push({ word: "maintenance", title: `maintenance "${w.name}" until ${w.until}` });
    break;
  }
  const snoozed = device.snoozed_until ? Date.parse(device.snoozed_until) : NaN;
  if (snoozed > now) flags.push({ word: "snoozed", title: `alerts snoozed until ${device.snoozed_until}` });
  return flags;
}

// GET /devices/{id}/state-changes and /incidents: a list, or {items: [...]}.
export function parseList(body) {
  if (Array.isArray(body)) return body;
  return (body && body.items) || [];
}

// An event of /ws/items: {type, payload}. Returns {type, deviceId, payload}.
export function parseEvent(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (!msg || typeof msg.type !== "string") return null;
  const payload = msg.payload && typeof msg.payload === "object" ? msg.payload : {};
  const deviceId = payload.device_id ?? (msg.type.startsWith("device.") ? payload.id : undefined);
  return { type: msg.type, deviceId, payload };
}

export function formatUptime(percent) {
  if (percent == null) return null;
  return `${Number(percent).toFixed(percent >= 99.995 ? 0 : 2)}%`;
}

export function formatSince(iso, now = Date.now()) {
  if (!iso) return "—";
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "—";
  const s = Math.max(0, Math.round((now - then) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// A notification's status as the device page shows it: the change itself, the n-th
// reminder, or the message sent when a maintenance window that held it back ended
// (its reason reads "after maintenance window N": jobs/alerts/policy.py).
export function notificationLabel(n) {
  if (!n || !n.status) return "—";
  if (n.reason && n.reason.startsWith("after maintenance window")) return `${n.status} (after maintenance)`;
  return n.reminder ? `${n.status} (reminder ${n.reminder})` : n.status;
}
