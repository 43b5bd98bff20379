// Line charts as inline SVG for the admin dashboard: no library, a few hundred bytes of markup per graph.
// Time runs the same way in every language (as on a clock face); labels are formatted for the page's language.
const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 150;
const PAD = { top: 12, bottom: 24, start: 44, end: 10 };

function node(name, attributes = {}, text = "") {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text) element.textContent = text;
  return element;
}

// The highest value to scale to: `max` if given, else a round number above the data.
function ceiling(values, max) {
  if (max) return max;
  const top = Math.max(1, ...values);
  const step = 10 ** Math.floor(Math.log10(top));
  return Math.ceil(top / step) * step;
}

// Path data for one series; a missing value or a gap of more than `gap` seconds starts a new line.
function pathData(samples, key, x, y, gap) {
  let data = "";
  let previous = null;
  for (const sample of samples) {
    const value = sample[key];
    if (value === null || value === undefined) {
      previous = null;
      continue;
    }
    const joined = previous !== null && sample.at - previous <= gap;
    data += `${joined ? "L" : "M"}${x(sample.at).toFixed(1)},${y(value).toFixed(1)} `;
    previous = sample.at;
  }
  return data.trim();
}

// An <svg> chart of `series` ([{key, label, className}]) over [start, end] (seconds since the epoch).
// `width` is the chart's width in CSS pixels: drawn 1:1, so its labels read at the page's size on any screen.
export function lineChart({ samples, series, start, end, max, interval, numberFormat, timeFormat, label, width }) {
  const WIDTH = Math.max(width, 160);
  const svg = node("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: WIDTH, height: HEIGHT, role: "img", "aria-label": label, class: "chart" });
  const values = samples.flatMap((s) => series.map((line) => s[line.key])).filter((v) => typeof v === "number");
  const top = ceiling(values, max);
  const x = (at) => PAD.start + ((at - start) / Math.max(end - start, 1)) * (WIDTH - PAD.start - PAD.end);
  const y = (value) => HEIGHT - PAD.bottom - (Math.min(value, top) / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (const fraction of [0, 0.5, 1]) {
    const level = y(top * fraction);
    svg.append(node("line", { x1: PAD.start, x2: WIDTH - PAD.end, y1: level, y2: level, class: "grid" }));
    svg.append(node("text", { x: PAD.start - 6, y: level + 4, "text-anchor": "end", class: "axis" }, numberFormat.format(top * fraction)));
  }
  for (const fraction of [0, 0.5, 1]) {
    const at = start + (end - start) * fraction;
    const anchor = fraction === 0 ? "start" : fraction === 1 ? "end" : "middle";
    svg.append(node("text", { x: x(at), y: HEIGHT - 6, "text-anchor": anchor, class: "axis" }, timeFormat.format(new Date(at * 1000))));
  }
  for (const line of series) {
    const data = pathData(samples, line.key, x, y, Math.max(3 * interval, 5));
    if (data) svg.append(node("path", { d: data, class: `series ${line.className || ""}` }));
    const last = [...samples].reverse().find((s) => typeof s[line.key] === "number");
    if (last) svg.append(node("circle", { cx: x(last.at), cy: y(last[line.key]), r: 3, class: `dot ${line.className || ""}` }));
  }
  return svg;
}
