// A 90-day sparkline as inline SVG, on a time axis ending now: days without data
// (a KPI that stopped being measured) show as a line that ends early.

import { svg } from "./dom.js";
import { number } from "./format.js";

const WIDTH = 120;
const HEIGHT = 32;
const PAD = 2;

export function sparkline(kpi, from, to) {
  const points = (kpi.series || []).filter((point) => point.average !== null);
  const label = points.length
    ? `${kpi.name}, last 90 days: ${points.length} days measured, from ${number(points[0].average)} to ${number(points[points.length - 1].average)} ${kpi.unit}`
    : `${kpi.name}: no measurements in the last 90 days`;
  const values = points.map((point) => point.average);
  if (kpi.target !== null && kpi.target !== undefined) values.push(kpi.target);
  const low = Math.min(...values);
  const high = Math.max(...values);
  const span = high - low || 1;
  const start = from.getTime();
  const length = to.getTime() - start;
  const x = (time) => PAD + ((time - start) / length) * (WIDTH - 2 * PAD);
  const y = (value) => HEIGHT - PAD - ((value - low) / span) * (HEIGHT - 2 * PAD);
  const children = [svg("title", {}, label)];
  if (kpi.target !== null && kpi.target !== undefined && points.length) {
    const level = y(kpi.target).toFixed(1);
    children.push(svg("line", { class: "goal", x1: PAD, x2: WIDTH - PAD, y1: level, y2: level }));
  }
  if (points.length) {
    const path = points.map((point) => `${x(Date.parse(point.bucketStart)).toFixed(1)},${y(point.average).toFixed(1)}`);
    children.push(svg("polyline", { class: "line", points: path.join(" ") }));
  }
  return svg(
    "svg",
    { width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": label, "data-points": points.length },
    children,
  );
}
