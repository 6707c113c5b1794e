// The page's entry point: sign-in state, the two views (#/ and #/product/KEY), their
// live updates, and the errors people need to see.

import * as auth from "./auth.js";
import { budget, GraphQLFailure, onBudget, request, waitBeforeSpending } from "./api.js";
import { h } from "./dom.js";
import { Live } from "./live.js";
import { BUDGET, KPI_CHANGED, MEASURED, PORTFOLIO, PRODUCT_CHANGED, SPARK_DAYS, productQuery } from "./queries.js";
import { statusText, withUnit } from "./format.js";
import { kpiItem, kpiRow, portfolioView, productView } from "./views.js";

const main = document.getElementById("main");
const alerts = document.getElementById("alerts");
const session = document.getElementById("session");
const announcer = document.getElementById("announcer");
const liveState = document.getElementById("live-state");
const budgetText = document.getElementById("budget");

const MIN_REFRESH_MS = 2000;

let live = null;
let current = null; // {route, data, window, kpis: Map key -> kpi, cost}
let generation = 0; // a newer view makes an older load's answer moot
let refreshTimer = null;
let method = "RICE";
let kpiSort = null; // {column: "it" | "product", direction}: the KPI table's order by importance
let following = null; // the view the subscriptions are for
let unsubscribe = [];

function alert(message) {
  alerts.replaceChildren(h("p", { class: "alert" }, message));
}

function clearAlert() {
  alerts.replaceChildren();
}

function announce(message) {
  announcer.textContent = message;
}

function show(...children) {
  main.replaceChildren(...children.flat(Infinity).filter((child) => child !== null && child !== undefined));
  main.setAttribute("aria-busy", "false");
}

// Views live in the fragment (#/, #/product/KEY); other fragments (#main, the skip
// link's) are places on the page, not views.
function isView(hash) {
  return hash === "" || hash.startsWith("#/");
}

function route() {
  if (!isView(location.hash)) return current ? current.route : { name: "portfolio" };
  const match = location.hash.match(/^#\/product\/([^/]+)$/);
  return match ? { name: "product", key: decodeURIComponent(match[1]) } : { name: "portfolio" };
}

function sparkWindow() {
  const to = new Date();
  return { from: new Date(to.getTime() - SPARK_DAYS * 86400000), to };
}

function renderSession() {
  if (!auth.signedIn()) {
    session.replaceChildren();
    return;
  }
  session.replaceChildren(
    h("span", { id: "scopes" }, `Access: ${[...auth.scopes()].sort().join(", ") || "none"}`),
    h("button", { type: "button", class: "secondary", id: "sign-out", onclick: () => auth.signOut() }, "Sign out"),
  );
}

function signInScreen(message) {
  if (live) live.close();
  live = null;
  following = null; // a next sign-in subscribes afresh
  unsubscribe = [];
  current = null;
  renderSession();
  show(
    h(
      "section",
      { class: "signin", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Portfolio dashboard"),
      message ? h("p", { class: "notice", id: "signin-message", role: "status" }, message) : null,
      h("p", {}, "KPIs, roadmap and constraints of every product, live. Sign in with your Portfolio Graph account."),
      h("button", { type: "button", id: "sign-in", onclick: () => auth.startSignIn().catch((error) => alert(error.message)) }, "Sign in"),
    ),
  );
}

// ---- loading views ---------------------------------------------------------------

async function loadPortfolio(window) {
  const products = [];
  let after = null;
  let cost = 0;
  do {
    const answer = await request(PORTFOLIO, { from: window.from.toISOString(), to: window.to.toISOString(), after });
    reportErrors(answer.errors);
    const page = answer.data.products;
    if (!page) throw new GraphQLFailure(errorText(answer.errors));
    products.push(...page.nodes);
    cost += answer.extensions && answer.extensions.cost ? answer.extensions.cost.requested : 0;
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after);
  return { products, cost };
}

async function loadProduct(key, window) {
  let withCost = auth.scopes().has("finance:read");
  let answer = await request(productQuery(withCost), { key, from: window.from.toISOString(), to: window.to.toISOString() });
  if (withCost && forbidden(answer.errors)) {
    // The token's roles no longer allow costs: ask again without them.
    withCost = false;
    answer = await request(productQuery(false), { key, from: window.from.toISOString(), to: window.to.toISOString() });
  }
  if (!answer.data.product && answer.errors && answer.errors.length) {
    throw new GraphQLFailure(errorText(answer.errors)); // refused, not missing
  }
  reportErrors(answer.errors);
  const cost = answer.extensions && answer.extensions.cost ? answer.extensions.cost.requested : 0;
  return { product: answer.data.product, withCost, cost };
}

function forbidden(errors) {
  return (errors || []).some((error) => error.extensions && error.extensions.code === "FORBIDDEN");
}

function errorText(errors) {
  return (errors || []).map((error) => error.message).join(" ") || "The API answered without data.";
}

function reportErrors(errors) {
  if (errors && errors.length) alert(`Part of the page could not be loaded: ${errorText(errors)}`);
}

function indexKpis(kpis) {
  return new Map(kpis.map((kpi) => [kpi.key, kpi]));
}

async function open(quietly = false) {
  const mine = ++generation;
  const where = route();
  const window = sparkWindow();
  if (!quietly) {
    main.setAttribute("aria-busy", "true");
    clearAlert();
  }
  if (!auth.scopes().has("portfolio:read")) {
    // Asking would only spend points on a refusal.
    alert("Your account does not give access to the portfolio: it needs portfolio:read (the viewer role has it). Ask an administrator.");
    show(h("p", { class: "empty" }, "Nothing to show."));
    return;
  }
  try {
    if (where.name === "product") {
      const { product, withCost, cost } = await loadProduct(where.key, window);
      if (mine !== generation) return;
      if (!product) {
        current = null;
        show(h("a", { class: "back", href: "#/" }, "← All products"), h("h1", {}, "Product not found"), h("p", { class: "empty" }, `There is no product with the key ${where.key}.`));
        return;
      }
      current = { route: where, product, window, withCost, cost, kpis: indexKpis(product.kpis.nodes) };
      renderProduct(quietly);
    } else {
      const { products, cost } = await loadPortfolio(window);
      if (mine !== generation) return;
      current = { route: where, products, window, cost, kpis: indexKpis(products.flatMap((product) => product.kpis.nodes)) };
      keepFocus(() => show(portfolioView(products, window)), quietly);
      document.title = "Portfolio dashboard";
    }
    follow(where);
  } catch (error) {
    if (mine !== generation) return;
    if (error instanceof auth.SessionEnded) return; // the sign-in screen says so
    alert(error instanceof GraphQLFailure ? `Could not load the page: ${error.message}` : `Could not load the page: ${error.message || error}`);
    if (!quietly) show(h("p", { class: "empty" }, "Nothing to show."), h("button", { type: "button", onclick: () => open() }, "Try again"));
  }
}

function renderProduct(quietly) {
  const { product, window, withCost } = current;
  keepFocus(
    () =>
      show(
        productView(product, window, {
          method,
          withCost,
          onMethod: (chosen) => {
            method = chosen;
            renderProduct(true);
          },
          kpiSort,
          onKpiSort: (chosen) => {
            kpiSort = chosen;
            renderProduct(true);
            announce(`KPIs sorted by ${chosen.column === "it" ? "importance to IT" : "importance to product"}, ${chosen.direction === "descending" ? "most" : "least"} important first.`);
          },
        }),
      ),
    quietly,
  );
  document.title = `${product.name} · Portfolio dashboard`;
  if (!quietly) main.focus();
}

// Re-rendering must not throw keyboard users back to the top.
function keepFocus(render, quietly) {
  const focused = document.activeElement && document.activeElement.id;
  render();
  if (quietly && focused) {
    const again = document.getElementById(focused);
    if (again) again.focus();
  }
}

// ---- live updates ----------------------------------------------------------------


function follow(where) {
  const name = where.name === "product" ? `product:${where.key}` : "portfolio";
  if (following === name) return;
  for (const stop of unsubscribe) stop();
  following = name;
  if (!live) {
    live = new Live({
      onState: (text) => (liveState.textContent = text),
      onResume: () => refreshSoon(), // changes may have been missed while away
    });
  }
  const failed = (errors) => alert(`Live updates stopped: ${(errors || []).map((error) => error.message).join(" ")}`);
  if (where.name === "product") {
    unsubscribe = [live.subscribe(PRODUCT_CHANGED, { key: where.key }, (payload) => productEvent(payload), failed)];
  } else {
    unsubscribe = [
      live.subscribe(MEASURED, {}, (payload) => measuredEvent(payload), failed),
      live.subscribe(KPI_CHANGED, {}, (payload) => kpiChangedEvent(payload), failed),
    ];
  }
}

function mergeMeasurement(kpi, observedAt, value) {
  const day = new Date(observedAt);
  if (!current || day < current.window.from) return;
  day.setUTCHours(0, 0, 0, 0);
  const start = day.getTime();
  const series = (kpi.series = kpi.series || []);
  const point = series.find((one) => Date.parse(one.bucketStart) === start);
  if (point) {
    point.average = (point.average * point.count + value) / (point.count + 1);
    point.count += 1;
  } else {
    series.push({ bucketStart: day.toISOString(), average: value, count: 1 });
    series.sort((a, b) => Date.parse(a.bucketStart) - Date.parse(b.bucketStart));
  }
  if (day > current.window.to) current.window.to = new Date(start + 86400000);
}

// Update one KPI where it is shown, in place; false if it is not on this view.
function patchKpi(update, measurements = []) {
  if (!current || !update) return false;
  const kpi = current.kpis.get(update.key);
  if (!kpi) return false;
  const before = kpi.status;
  Object.assign(kpi, update);
  for (const measurement of measurements) mergeMeasurement(kpi, measurement.observedAt, measurement.value);
  const shown = main.querySelector(`[data-kpi="${CSS.escape(kpi.key)}"]`);
  if (shown) {
    const product = shown.closest("[data-product-name]");
    shown.replaceWith(
      current.route.name === "product"
        ? kpiRow(kpi, current.window, current.product.name)
        : kpiItem(kpi, current.window, product && product.dataset.productName),
    );
  }
  const moved = before !== kpi.status ? `, now ${statusText(kpi.status)}` : "";
  announce(`${kpi.name}: ${withUnit(kpi.latestValue, kpi.unit)}${moved}.`);
  return true;
}

function measuredEvent(payload) {
  const event = payload.data && payload.data.measurementsRecorded;
  if (event && !patchKpi(event.kpi, event.measurements)) refreshSoon();
}

function kpiChangedEvent(payload) {
  const event = payload.data && payload.data.kpiChanged;
  if (!event) return;
  if (event.change === "UPDATED" && patchKpi(event.kpi)) return;
  if (event.change !== "MEASURED") refreshSoon(); // created, deleted, moved between products
}

function productEvent(payload) {
  const event = payload.data && payload.data.productChanged;
  if (!event) return;
  const node = event.node;
  if (node && event.typename === "KpiMeasurement" && patchKpi(node.kpi, [node])) return;
  if (node && event.typename === "Kpi" && event.change !== "DELETED" && patchKpi(node)) return;
  refreshSoon();
}

// Read the view afresh, at most as often as the budget allows (see waitBeforeSpending):
// a burst of events gives one request.
async function refreshSoon() {
  if (refreshTimer || !current) return;
  refreshTimer = true; // one pending read, however many events arrive meanwhile
  if (!budget.resetAt || Date.now() > budget.resetAt) await learnBudget();
  const cost = current ? current.cost || 1 : 1;
  let wait = MIN_REFRESH_MS;
  if (budget.limit && budget.remaining !== null && budget.remaining < budget.limit / 2) {
    // Past half the budget: spread what is left over what is left of the window.
    wait = Math.max(wait, waitBeforeSpending(cost));
  } else if (budget.remaining !== null && budget.remaining < cost) {
    wait = Math.max(wait, waitBeforeSpending(cost));
  }
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    open(true);
  }, wait);
}

async function learnBudget() {
  try {
    await request(BUDGET);
  } catch {
    // Not knowing the window only makes the pace more careful (Retry-After still holds).
  }
}

onBudget((known) => {
  budgetText.textContent = known.limit ? `Rate limit: ${known.remaining} of ${known.limit} points left` : "";
});

// ---- start -----------------------------------------------------------------------

auth.onChange((signedIn, reason) => {
  renderSession();
  if (!signedIn) signInScreen(reason);
});

window.addEventListener("hashchange", () => {
  if (auth.signedIn() && isView(location.hash)) open();
});

(async () => {
  try {
    if (await auth.finishSignIn()) {
      learnBudget();
      await open();
      return;
    }
  } catch (error) {
    signInScreen(error.message);
    return;
  }
  signInScreen();
})();
