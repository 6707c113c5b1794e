// GraphQL over HTTP at /graphql, with the caller's token, and a pace that never spends
// the point budget faster than it refills: every answer reports what is left
// (extensions.cost, rateLimit), and a refused request (429) says when to come back.

import { accessToken, refresh } from "./auth.js";

const endpoint = new URL("graphql", new URL(".", document.baseURI));

export const budget = { limit: null, remaining: null, resetAt: null, blockedUntil: 0 };
const budgetListeners = new Set();

export function onBudget(listener) {
  budgetListeners.add(listener);
}

export class GraphQLFailure extends Error {
  constructor(message, errors = []) {
    super(message);
    this.errors = errors;
  }
}

// "45 s", "58 min": how long until the budget allows another request.
function duration(seconds) {
  return seconds < 120 ? `${Math.ceil(seconds)} s` : `${Math.ceil(seconds / 60)} min`;
}

function note(body) {
  const cost = body && body.extensions && body.extensions.cost;
  if (cost && typeof cost.remaining === "number") {
    budget.remaining = cost.remaining;
    budget.limit = cost.budget;
  }
  const rateLimit = body && body.data && body.data.rateLimit;
  if (rateLimit) {
    budget.remaining = rateLimit.remaining;
    budget.limit = rateLimit.limit;
    budget.resetAt = Date.parse(rateLimit.resetAt);
  }
  for (const listener of budgetListeners) listener(budget);
}

// How long to wait before spending ``cost`` more points: the rest of the window's
// points spread evenly over the rest of the window (and never before a 429's
// Retry-After has passed).
export function waitBeforeSpending(cost) {
  const now = Date.now();
  let wait = Math.max(0, budget.blockedUntil - now);
  if (budget.remaining !== null && budget.resetAt) {
    const left = Math.max(0, budget.resetAt - now);
    if (budget.remaining < cost) return Math.max(wait, left);
    wait = Math.max(wait, (left * cost) / Math.max(budget.remaining, 1));
  }
  return wait;
}

async function post(query, variables) {
  return fetch(endpoint, {
    method: "POST",
    headers: {
      Accept: "application/graphql-response+json, application/json",
      "Content-Type": "application/json",
      Authorization: `Bearer ${accessToken()}`,
    },
    body: JSON.stringify({ query, variables }),
  });
}

// {data, errors} of a query; throws GraphQLFailure when there is no data at all.
export async function request(query, variables = {}) {
  const waitMs = budget.blockedUntil - Date.now();
  if (waitMs > 0) {
    throw new GraphQLFailure(`The rate limit is spent; try again in ${duration(waitMs / 1000)}.`);
  }
  let response = await post(query, variables);
  if (response.status === 401) {
    await refresh(); // throws (and signs out) when the session is over
    response = await post(query, variables);
  }
  const body = await response.json().catch(() => null);
  if (response.status === 429) {
    const seconds = Number(response.headers.get("Retry-After") || "60");
    budget.blockedUntil = Date.now() + seconds * 1000;
    note(body);
    throw new GraphQLFailure(`The rate limit is spent; try again in ${duration(seconds)}.`, body ? body.errors : []);
  }
  if (!body) throw new GraphQLFailure(`The API answered ${response.status} without a GraphQL response.`);
  note(body);
  if (body.data == null) {
    const first = (body.errors || [])[0];
    throw new GraphQLFailure(first ? first.message : `The API answered ${response.status}.`, body.errors || []);
  }
  return body;
}
