// How values, statuses and dates read on the page. Unknown enum values (the API may add
// some) are shown as their words, never dropped.

const KNOWN_STATUS = {
  ON_TARGET: "On target",
  OFF_TARGET: "Off target",
  WARNING: "Warning",
  CRITICAL: "Critical",
  NO_DATA: "No data",
};

export function words(value) {
  if (value === null || value === undefined) return "—";
  const text = String(value).toLowerCase().replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function statusText(status) {
  return KNOWN_STATUS[status] || words(status);
}

// A CSS class from any status: known ones have a colour, others the neutral style.
export function statusClass(status) {
  return `status ${String(status || "unknown").toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
}

export function number(value) {
  if (value === null || value === undefined) return "—";
  const magnitude = Math.abs(value);
  const digits = magnitude >= 1000 ? 0 : magnitude >= 100 ? 1 : 2;
  return new Intl.NumberFormat("en", { maximumFractionDigits: digits }).format(value);
}

export function withUnit(value, unit) {
  if (value === null || value === undefined) return "—";
  return unit === "%" ? `${number(value)} %` : `${number(value)} ${unit}`;
}

export function targetText(kpi) {
  if (kpi.target === null || kpi.target === undefined) return "No target";
  const sign = kpi.direction === "LOWER_IS_BETTER" ? "≤" : kpi.direction === "HIGHER_IS_BETTER" ? "≥" : "";
  return `Target ${sign} ${withUnit(kpi.target, kpi.unit)}`.replace("  ", " ");
}

export function money(value) {
  if (value === null || value === undefined) return "—";
  return new Intl.NumberFormat("en", { maximumFractionDigits: 0 }).format(Number(value));
}

export function quarterOf(date) {
  if (!date) return "Unscheduled";
  const [year, month] = date.split("-").map(Number);
  return `${year} Q${Math.floor((month - 1) / 3) + 1}`;
}

// The four KPIs every product shares, in the order people read them.
const KIND_ORDER = ["UPTIME", "ADOPTION", "LOAD-TIME", "INCIDENTS"];

export function kpiOrder(a, b) {
  const rank = (kpi) => {
    const found = KIND_ORDER.findIndex((suffix) => kpi.key.endsWith(`-${suffix}`));
    return found === -1 ? KIND_ORDER.length : found;
  };
  return rank(a) - rank(b) || a.key.localeCompare(b.key);
}

const SEVERITY_ORDER = ["BLOCKER", "HIGH", "MEDIUM", "LOW"];

export function severityRank(severity) {
  const found = SEVERITY_ORDER.indexOf(severity);
  return found === -1 ? SEVERITY_ORDER.length : found;
}

// "3 days ago", "5 hours ago": how long ago a measurement was observed, from the
// browser's clock (the API decides staleness by the database's).
export function ago(when, now = Date.now()) {
  const seconds = Math.round((now - Date.parse(when)) / 1000);
  const units = [["day", 86400], ["hour", 3600], ["minute", 60]];
  const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return relative.format(-Math.round(seconds / size), unit);
  }
  return "just now";
}

// Freshness in words, never colour alone: "Stale — last measured 3 days ago".
export function freshnessText(kpi) {
  const last = kpi.latest && kpi.latest.observedAt ? `last measured ${ago(kpi.latest.observedAt)}` : "";
  if (kpi.freshness === "FRESH") return last ? `Fresh — ${last}` : "Fresh";
  if (kpi.freshness === "STALE") return last ? `Stale — ${last}` : "Stale";
  if (kpi.freshness === "NO_DATA" || kpi.freshness === undefined) return "Never measured";
  return last ? `${words(kpi.freshness)} — ${last}` : words(kpi.freshness);
}

// Most important first; unrated (null) and unknown levels after the known ones.
const IMPORTANCE_ORDER = ["CRITICAL", "HIGH", "MEDIUM", "INDIRECT"];

export function importanceRank(level) {
  const found = IMPORTANCE_ORDER.indexOf(level);
  return found === -1 ? IMPORTANCE_ORDER.length : found;
}

export function importanceText(level) {
  return level === null || level === undefined ? "Not rated" : words(level);
}
