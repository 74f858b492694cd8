// Every request to the API: the token in a header (never a cookie), JSON bodies, one
// error type. A 401 asks for the token once (shared by concurrent requests) and retries.

const TOKEN_KEY = "fleetprobe.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

let asking = null;

function askToken(wrong) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const error = document.getElementById("token-error");
  error.hidden = !wrong;
  error.textContent = wrong ? "That token was refused; try again." : "";
  asking = new Promise((resolve) => {
    form.addEventListener(
      "submit",
      (event) => {
        event.preventDefault();
        const value = form.elements.token.value.trim();
        sessionStorage.setItem(TOKEN_KEY, value);
        form.reset();
        dialog.close();
        asking = null;
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return asking;
}

export async function api(method, path, body) {
  for (;;) {
    const headers = { Accept: "application/json" };
    const sent = token();
    if (sent) headers.Authorization = `Bearer ${sent}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(path, init);
    if (resp.status === 401) {
      await askToken(Boolean(sent));
      continue;
    }
    let data = null;
    if (resp.status !== 204) {
      const text = await resp.text();
      try {
        data = text ? JSON.parse(text) : null;
      } catch {
        data = text;
      }
    }
    if (!resp.ok) throw new ApiError(resp.status, data && data.detail !== undefined ? data.detail : resp.statusText);
    return data;
  }
}

// The API's 422: {"detail": [{loc: ["body", "conditions", 0], msg, type}, ...]} or a
// string. Returns {field: message} with "_general" for what names no form field.
export function fieldErrors(detail, fields) {
  const out = {};
  const add = (key, msg) => {
    out[key] = out[key] ? `${out[key]}; ${msg}` : msg;
  };
  if (!Array.isArray(detail)) {
    add("_general", String(detail));
    return out;
  }
  for (const issue of detail) {
    const loc = Array.isArray(issue.loc) ? issue.loc : [];
    const path = loc[0] === "body" ? loc.slice(1) : loc;
    const field = path.find((part) => typeof part === "string" && fields.includes(part));
    const where = path.slice(1).join(".");
    const msg = where && field ? `${issue.msg} (at ${where})` : issue.msg;
    if (field) add(field, msg);
    else add("_general", path.length ? `${path.join(".")}: ${issue.msg}` : issue.msg);
  }
  return out;
}

// Which API routes this server has (from its own spec), so the page never asks for one
// it lacks: {has(method, path)}, path written as "/devices/{}/uptime".
let spec = null;
export async function features() {
  if (!spec) {
    spec = fetch("/openapi.json", { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .catch(() => ({ paths: {} }));
  }
  const doc = await spec;
  const routes = new Set();
  for (const [path, ops] of Object.entries(doc.paths || {})) {
    const shape = path.replace(/\{[^}]+\}/g, "{}");
    for (const method of Object.keys(ops)) routes.add(`${method.toUpperCase()} ${shape}`);
  }
  return { has: (method, path) => routes.has(`${method} ${path}`) };
}
