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
