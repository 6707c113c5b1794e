// What the page shows: the portfolio's cards and one product's KPIs, roadmap and
// constraints. Each function returns elements built from the API's answer.

import { h } from "./dom.js";
import {
  freshnessText, importanceRank, importanceText, kpiOrder, money, number, quarterOf, severityRank, statusClass,
  statusText, targetText, withUnit, words,
} from "./format.js";
import { sparkline } from "./sparkline.js";

let tips = 0;

export function statusBadge(status) {
  // Colour and words together: the status reads the same without colour.
  return h("span", { class: statusClass(status), "data-status": status }, statusText(status));
}

export function freshnessNote(kpi) {
  const stale = kpi.freshness !== "FRESH";
  return h("span", { class: stale ? "freshness stale" : "freshness", "data-freshness": kpi.freshness }, freshnessText(kpi));
}

// On a product's card, "System uptime — Payments Platform" reads "System uptime".
function shortName(kpi, productName) {
  const suffix = ` — ${productName}`;
  return productName && kpi.name.endsWith(suffix) ? kpi.name.slice(0, -suffix.length) : kpi.name;
}

export function kpiItem(kpi, window, productName) {
  return h(
    "li",
    { class: "kpi", "data-kpi": kpi.key },
    h("span", { class: "name" }, shortName(kpi, productName)),
    statusBadge(kpi.status),
    h(
      "span",
      { class: "figures" },
      h("span", { class: "value" }, withUnit(kpi.latestValue, kpi.unit)),
      " · ",
      h("span", { class: "target" }, targetText(kpi)),
    ),
    h("span", { class: "spark" }, sparkline(kpi, window.from, window.to)),
    freshnessNote(kpi),
  );
}

export function portfolioView(products, window) {
  const heading = h("h1", {}, "Portfolio");
  if (!products.length) {
    return [heading, h("p", { class: "empty" }, "There are no products in the portfolio yet.")];
  }
  const cards = products.map((product) => {
    const blockers = product.openBlockers ? product.openBlockers.totalCount : 0;
    const kpis = [...product.kpis.nodes].sort(kpiOrder);
    return h(
      "li",
      { class: "card", "data-product": product.key, "data-product-name": product.name, "aria-labelledby": `product-${product.key}` },
      h("h2", { id: `product-${product.key}` }, h("a", { href: `#/product/${encodeURIComponent(product.key)}` }, product.name)),
      h(
        "p",
        { class: "meta" },
        `${product.key} · ${words(product.lifecycleStage)} · `,
        h("span", { class: blockers ? "blockers some" : "blockers" }, blockers === 1 ? "1 open blocker" : `${blockers} open blockers`),
      ),
      kpis.length
        ? h("ul", { class: "kpis", "aria-label": `KPIs of ${product.name}` }, kpis.map((kpi) => kpiItem(kpi, window, product.name)))
        : h("p", { class: "empty" }, "No KPIs yet."),
    );
  });
  return [heading, h("ul", { class: "cards", "aria-label": "Products" }, cards)];
}

function trendText(trend) {
  if (!trend || trend.direction === "NO_DATA") return "No data";
  const change = trend.changePercent === null || trend.changePercent === undefined
    ? ""
    : ` (${trend.changePercent > 0 ? "+" : ""}${number(trend.changePercent)} %)`;
  return `${words(trend.direction)}${change}`;
}

export function kpiRow(kpi, window, productName) {
  const direction = kpi.trend ? String(kpi.trend.direction).toLowerCase() : "";
  return h(
    "tr",
    { "data-kpi": kpi.key },
    h("th", { scope: "row" }, shortName(kpi, productName), h("br"), h("small", {}, kpi.key)),
    h("td", { class: "num value" }, withUnit(kpi.latestValue, kpi.unit)),
    h("td", { class: "num" }, targetText(kpi)),
    h("td", {}, statusBadge(kpi.status), h("br"), freshnessNote(kpi)),
    h("td", {}, h("span", { class: `trend ${direction}` }, trendText(kpi.trend)), h("div", { class: "spark" }, sparkline(kpi, window.from, window.to))),
    h("td", { class: "importance", "data-importance": "it" }, importanceText(kpi.itImportanceLevel)),
    h("td", { class: "why" }, kpi.itRelevance),
    h("td", { class: "importance", "data-importance": "product" }, importanceText(kpi.productImportanceLevel)),
    h("td", { class: "why" }, kpi.productRelevance),
  );
}

// The columns the KPI table sorts by: the field, most important first ("descending").
export const IMPORTANCE_COLUMNS = {
  it: { field: "itImportanceLevel", title: "Importance to IT" },
  product: { field: "productImportanceLevel", title: "Importance to product" },
};

function sortedKpis(kpis, sort) {
  const ordered = [...kpis].sort(kpiOrder);
  if (!sort || !IMPORTANCE_COLUMNS[sort.column]) return ordered;
  const { field } = IMPORTANCE_COLUMNS[sort.column];
  const sign = sort.direction === "ascending" ? -1 : 1;
  // Stable: equal levels keep the usual KPI order.
  return ordered.sort((a, b) => sign * (importanceRank(a[field]) - importanceRank(b[field])));
}

// A sortable header: a button named by its column (keyboard and screen reader
// reachable); aria-sort on the header the rows are sorted by says in which order.
function sortHeader(column, sort, onSort) {
  const sorted = sort && sort.column === column ? sort.direction : null;
  const next = sorted === "descending" ? "ascending" : "descending";
  const { title } = IMPORTANCE_COLUMNS[column];
  return h(
    "th",
    { scope: "col", "aria-sort": sorted },
    h(
      "button",
      {
        type: "button",
        class: "sort",
        id: `sort-${column}`,
        "data-sort": column,
        onclick: () => onSort({ column, direction: next }),
      },
      title,
      h("span", { "aria-hidden": "true" }, sorted === "descending" ? " ▼" : sorted === "ascending" ? " ▲" : ""),
    ),
  );
}

function kpiTable(kpis, window, productName, sort, onSort) {
  if (!kpis.length) return h("p", { class: "empty" }, "This product has no KPIs yet.");
  const plain = (title) => h("th", { scope: "col" }, title);
  return h(
    "table",
    { class: "kpi-table" },
    h("caption", {}, "KPIs: latest value against target, freshness, 30-day trend and 90-day history; sortable by importance"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["KPI", "Latest", "Target", "Status", "Trend (30 days)"].map(plain),
        sortHeader("it", sort, onSort),
        plain("Why it matters to IT"),
        sortHeader("product", sort, onSort),
        plain("Why it matters to product"),
      ),
    ),
    h("tbody", {}, sortedKpis(kpis, sort).map((kpi) => kpiRow(kpi, window, productName))),
  );
}

function scoreCell(explained) {
  const id = `tip-${++tips}`;
  const score = explained.score === null || explained.score === undefined ? "—" : number(explained.score);
  // The explanation shows on hover and on keyboard focus, and is read out with the score.
  return h(
    "span",
    { class: "score-wrap" },
    h("button", {
      type: "button",
      class: "score",
      "aria-describedby": id,
      onkeydown: (event) => event.key === "Escape" && event.target.blur(), // dismiss the text
    }, score),
    h("span", { class: "tip", role: "tooltip", id }, explained.explanation),
  );
}

function blockedCell(initiative) {
  if (!initiative.isBlocked) return "No";
  const by = (initiative.blockedBy || []).map((constraint) => `${constraint.key} (${constraint.title})`);
  return h("span", { class: "blocked" }, `Blocked by ${by.join(", ") || "a constraint"}`);
}

function roadmap(initiatives, method, withCost) {
  if (!initiatives.length) return [h("p", { class: "empty" }, "No initiatives change this product yet.")];
  const scoreOf = (initiative) => (method === "WSJF" ? initiative.wsjfScore : initiative.riceScore);
  const byQuarter = new Map();
  const ordered = [...initiatives].sort((a, b) => (a.targetStart || "9999").localeCompare(b.targetStart || "9999"));
  for (const initiative of ordered) {
    const quarter = quarterOf(initiative.targetStart);
    if (!byQuarter.has(quarter)) byQuarter.set(quarter, []);
    byQuarter.get(quarter).push(initiative);
  }
  const tables = [];
  for (const [quarter, items] of byQuarter) {
    items.sort((a, b) => (scoreOf(b) ?? -Infinity) - (scoreOf(a) ?? -Infinity) || a.key.localeCompare(b.key));
    const columns = ["Initiative", "Status", `${method} score`, "Blocked", ...(withCost ? ["Estimated cost"] : [])];
    tables.push(
      h(
        "table",
        { class: "roadmap", "data-quarter": quarter },
        h("caption", {}, `${quarter}: ${items.length} ${items.length === 1 ? "initiative" : "initiatives"}, by ${method}`),
        h("thead", {}, h("tr", {}, columns.map((title) => h("th", { scope: "col" }, title)))),
        h(
          "tbody",
          {},
          items.map((initiative) =>
            h(
              "tr",
              { "data-initiative": initiative.key, class: initiative.isBlocked ? "is-blocked" : null },
              h("th", { scope: "row" }, initiative.title, h("br"), h("small", {}, initiative.key)),
              h("td", {}, words(initiative.status)),
              h("td", { class: "num" }, scoreCell(method === "WSJF" ? initiative.wsjf : initiative.rice)),
              h("td", {}, blockedCell(initiative)),
              withCost ? h("td", { class: "num cost" }, money(initiative.estimatedCost)) : null,
            ),
          ),
        ),
      ),
    );
  }
  return tables;
}

function constraintList(constraints) {
  if (!constraints.length) return [h("p", { class: "empty" }, "No technical constraints apply to this product.")];
  const bySeverity = new Map();
  for (const constraint of [...constraints].sort((a, b) => severityRank(a.severity) - severityRank(b.severity) || a.key.localeCompare(b.key))) {
    if (!bySeverity.has(constraint.severity)) bySeverity.set(constraint.severity, []);
    bySeverity.get(constraint.severity).push(constraint);
  }
  return [...bySeverity].map(([severity, items]) =>
    h(
      "section",
      { class: "severity-group", "data-severity": severity },
      h("h3", {}, `${words(severity)} (${items.length})`),
      h(
        "ul",
        { class: "constraints" },
        items.map((constraint) =>
          h(
            "li",
            { "data-constraint": constraint.key },
            h("span", { class: "severity" }, words(constraint.severity)),
            ` · ${constraint.key}: ${constraint.title} · ${words(constraint.category)} · ${words(constraint.status)}`,
            constraint.dueDate ? ` · due ${constraint.dueDate}` : "",
            constraint.mitigationPlan ? h("br") : null,
            constraint.mitigationPlan ? h("small", {}, `Mitigation: ${constraint.mitigationPlan}`) : null,
          ),
        ),
      ),
    ),
  );
}

export function productView(product, window, options) {
  const { method, withCost, onMethod, kpiSort, onKpiSort } = options;
  const owners = [product.businessOwnerTeam, product.technologyOwnerTeam].map((team) => (team ? team.name : "—"));
  const picker = h(
    "select",
    { id: "order", onchange: (event) => onMethod(event.target.value) },
    ["RICE", "WSJF"].map((value) => h("option", { value, selected: value === method }, value)),
  );
  return [
    h("a", { class: "back", href: "#/" }, "← All products"),
    h("h1", {}, `${product.name} `, h("small", {}, product.key)),
    h("p", { class: "meta" }, `${words(product.lifecycleStage)} · business owner: ${owners[0]} · technology owner: ${owners[1]}`),
    product.description ? h("p", {}, product.description) : null,
    h("h2", { id: "kpis" }, "KPIs"),
    kpiTable(product.kpis.nodes, window, product.name, kpiSort, onKpiSort),
    h("h2", { id: "roadmap" }, "Roadmap"),
    h("div", { class: "toolbar" }, h("label", { for: "order" }, "Order each quarter by"), picker,
      withCost ? null : h("span", { class: "target" }, "Costs are hidden: your access does not include finance:read.")),
    roadmap(product.initiatives.nodes, method, withCost),
    h("h2", { id: "constraints" }, "Technical constraints by severity"),
    constraintList(product.constraints.nodes),
  ];
}
