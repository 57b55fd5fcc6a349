// @ts-check
// A line chart of daily series as inline SVG: enough for the economy page, no dependency. It
// is drawn at the page's width so its text stays readable on a phone.
import { h } from "./dom.js";
import { number, shortDay } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
// The same colours as .series-N in console.css (the legend's swatches); each line also has its
// own dash, so a line drawn over another still shows.
const COLORS = ["#1f6feb", "#e36209", "#8250df", "#b42318", "#067647"];
const DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 0"];
const GRID = 4;

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// A round top for the axis (1, 2 or 5 times a power of ten), so the gridlines read well.
function niceTop(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(1, value)));
  return [1, 2, 5, 10].map((m) => m * power).find((top) => top >= value) ?? 10 * power;
}

// `days`: [{date, ...}]; `series`: [[label, field]]; `unit`: the y axis's title.
export function lineChart(days, series, unit) {
  const width = Math.max(300, Math.min(1100, (document.getElementById("page")?.clientWidth ?? 800) - 40));
  const height = 260, left = 56, right = 12, top = 24, bottom = 28;
  const highest = niceTop(Math.max(1, ...days.flatMap((d) => series.map(([, field]) => d[field]))));
  const x = (i) => left + (days.length < 2 ? (width - left - right) / 2 : (i * (width - left - right)) / (days.length - 1));
  const y = (v) => height - bottom - (v * (height - top - bottom)) / highest;
  const every = Math.ceil(days.length / Math.max(2, Math.floor(width / 70)));
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": unit },
    svg("text", { x: 4, y: 14, "font-size": 12, fill: "#5b6476", "data-axis": "y" }, unit),
    ...Array.from({ length: GRID + 1 }, (_, i) => (highest * i) / GRID).flatMap((v) => [
      svg("line", { x1: left, y1: y(v), x2: width - right, y2: y(v), stroke: "#e6e9ef" }),
      svg("text", { x: left - 6, y: y(v) + 4, "font-size": 11, "text-anchor": "end", fill: "#5b6476" }, number(v)),
    ]),
    ...days.filter((_, i) => i % every === 0).map((d) => svg("text", {
      x: x(days.indexOf(d)), y: height - bottom + 16, "font-size": 11, "text-anchor": "middle", fill: "#5b6476",
    }, shortDay(d.date))),
    ...series.map(([, field], s) => svg("polyline", {
      fill: "none", stroke: COLORS[s % COLORS.length], "stroke-width": 2, "stroke-dasharray": DASHES[s % DASHES.length],
      "stroke-opacity": 0.85, "data-series": field, points: days.map((d, i) => `${x(i)},${y(d[field])}`).join(" "),
    })),
    ...series.flatMap(([name, field], s) => days.map((d, i) => svg("circle", {
      cx: x(i), cy: y(d[field]), r: 3, fill: COLORS[s % COLORS.length],
    }, svg("title", {}, `${shortDay(d.date)} ${name}: ${number(d[field])}`)))));
  const legend = h("p", { class: "legend" },
    series.map(([name], s) => h("span", {}, h("i", { class: `series-${s % COLORS.length}` }), name)));
  return [h("div", { class: "chart-wrap" }, chart), legend];
}

// Differences with their intervals, one row per arm: a dot at the difference, a bar from low
// to high, and the zero line (an interval across it says "no difference shown").
// `rows`: [{name, difference, low, high, significant}].
export function intervalChart(rows, unit) {
  const width = Math.max(300, Math.min(700, (document.getElementById("page")?.clientWidth ?? 700) - 40));
  const left = 90, right = 16, row = 28, top = 22, height = top + row * rows.length + 24;
  const reach = Math.max(1e-9, ...rows.flatMap((r) => [Math.abs(r.low), Math.abs(r.high)]));
  const x = (v) => left + ((v + reach) * (width - left - right)) / (2 * reach);
  const y = (i) => top + row * i + row / 2;
  return h("div", { class: "chart-wrap" }, svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": unit },
    svg("text", { x: 4, y: 14, "font-size": 12, fill: "#5b6476" }, unit),
    svg("line", { x1: x(0), y1: top - 4, x2: x(0), y2: height - 20, stroke: "#9aa3b2", "stroke-dasharray": "3 3" }),
    ...[-reach, 0, reach].map((v) => svg("text", { x: x(v), y: height - 6, "font-size": 11, "text-anchor": "middle", fill: "#5b6476" }, number(Math.round(v * 100) / 100 || 0))),
    ...rows.flatMap((r, i) => [
      svg("text", { x: left - 8, y: y(i) + 4, "font-size": 12, "text-anchor": "end", fill: "#1d2330" }, r.name),
      svg("line", { x1: x(r.low), y1: y(i), x2: x(r.high), y2: y(i), stroke: r.significant ? COLORS[4] : COLORS[0], "stroke-width": 3 }),
      svg("circle", { cx: x(r.difference), cy: y(i), r: 5, fill: r.significant ? COLORS[4] : COLORS[0] },
        svg("title", {}, `${r.name}: ${number(r.difference)} [${number(r.low)}, ${number(r.high)}]`)),
    ])));
}
