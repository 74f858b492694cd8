// Charts drawn as SVG, no library: a sparkline of recent latencies and a latency chart.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// values: oldest first; null = a check without a latency (drawn as a red tick).
export function sparkline(svg, values, outcomes) {
  const w = 100;
  const h = 24;
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const nums = values.filter((v) => v != null);
  if (!values.length) return;
  const max = Math.max(1, ...nums);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const points = [];
  values.forEach((v, i) => {
    const x = values.length > 1 ? i * step : w / 2;
    if (v != null) points.push(`${x.toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`);
    if (outcomes && outcomes[i] === "down") {
      svg.append(el("line", { x1: x, x2: x, y1: 0, y2: h, class: "spark-down" }));
    }
  });
  // One point alone draws no line: a short dash where it is.
  if (points.length === 1) {
    const [x, y] = points[0].split(",").map(Number);
    points.splice(0, 1, `${Math.max(0, x - 3).toFixed(1)},${y}`, `${Math.min(w, x + 3).toFixed(1)},${y}`);
  }
  if (points.length) svg.append(el("polyline", { points: points.join(" "), class: "spark-line" }));
}

// A time on the axis: "MM-DD hh:mm" (UTC), "hh:mm:ss" when the axis spans under an hour.
export function axisTime(t, span) {
  const iso = new Date(t).toISOString();
  return span < 3600e3 ? iso.slice(11, 19) : iso.slice(5, 16).replace("T", " ");
}

// points: [{t: ms since epoch, v: latency ms | null, outcome}], any order.
export function latencyChart(svg, points, { from, to }) {
  const w = 800;
  const h = 220;
  const pad = { l: 50, r: 10, t: 10, b: 24 };
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const sorted = [...points].sort((a, b) => a.t - b.t);
  const nums = sorted.filter((p) => p.v != null).map((p) => p.v);
  const max = Math.max(1, ...nums) * 1.1;
  const x = (t) => pad.l + ((t - from) / Math.max(1, to - from)) * (w - pad.l - pad.r);
  const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
  svg.append(el("line", { x1: pad.l, x2: w - pad.r, y1: h - pad.b, y2: h - pad.b, class: "axis" }));
  svg.append(el("line", { x1: pad.l, x2: pad.l, y1: pad.t, y2: h - pad.b, class: "axis" }));
  for (const frac of [0, 0.5, 1]) {
    const label = el("text", { x: pad.l - 6, y: y(max * frac) + 4, class: "tick", "text-anchor": "end" });
    label.textContent = `${Math.round(max * frac)} ms`;
    svg.append(label);
  }
  for (const frac of [0, 0.5, 1]) {
    const t = from + (to - from) * frac;
    const anchor = frac === 0 ? "start" : frac === 1 ? "end" : "middle";
    const label = el("text", { x: x(t), y: h - 6, class: "tick", "text-anchor": anchor });
    label.textContent = axisTime(t, to - from);
    svg.append(label);
  }
  for (const p of sorted) {
    if (p.outcome === "down") svg.append(el("line", { x1: x(p.t), x2: x(p.t), y1: pad.t, y2: h - pad.b, class: "chart-down" }));
  }
  const line = sorted.filter((p) => p.v != null).map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
  if (line.length) svg.append(el("polyline", { points: line.join(" "), class: "chart-line" }));
  if (!sorted.length) {
    const empty = el("text", { x: w / 2, y: h / 2, class: "tick", "text-anchor": "middle" });
    empty.textContent = "no checks in this window";
    svg.append(empty);
  }
}
