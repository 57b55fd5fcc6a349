// @ts-check
// A line chart of daily series as inline SVG: enough for the economy page, no dependency.
import { h } from "./dom.js";
import { number } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
// The same colours as .series-N in console.css (the legend's swatches).
const COLORS = ["#1f6feb", "#e36209", "#8250df", "#b42318", "#067647"];

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// `days`: [{date, ...}]; `series`: [[label, field]]. Returns the chart and its legend.
export function lineChart(days, series) {
  const width = 800, height = 240, pad = 40;
  const top = Math.max(1, ...days.flatMap((d) => series.map(([, field]) => d[field])));
  const x = (i) => pad + (days.length < 2 ? (width - 2 * pad) / 2 : (i * (width - 2 * pad)) / (days.length - 1));
  const y = (v) => height - pad - (v * (height - 2 * pad)) / top;
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img" },
    svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#d9dde5" }),
    svg("text", { x: 4, y: pad, "font-size": 11, fill: "#5b6476" }, number(top)),
    // At most about ten dates on the axis, so they never overlap.
    ...days.filter((_, i) => i % Math.ceil(days.length / 10) === 0).map((d) => svg("text", {
      x: x(days.indexOf(d)), y: height - pad + 16, "font-size": 10, "text-anchor": "middle", fill: "#5b6476",
    }, d.date.slice(5))),
    ...series.map(([, field], s) => svg("polyline", {
      fill: "none", stroke: COLORS[s % COLORS.length], "stroke-width": 2, "data-series": field,
      points: days.map((d, i) => `${x(i)},${y(d[field])}`).join(" "),
    })),
    ...series.flatMap(([, field], s) => days.map((d, i) => svg("circle", {
      cx: x(i), cy: y(d[field]), r: 3, fill: COLORS[s % COLORS.length],
    }, svg("title", {}, `${d.date} ${field}: ${number(d[field])}`)))));
  const legend = h("p", { class: "legend" },
    series.map(([label], s) => h("span", {}, h("i", { class: `series-${s % COLORS.length}` }), label)));
  return [chart, legend];
}
