// The documents the page sends: each view in one request (the portfolio in pages of 18
// products, which keeps a page under the query cost limit). Only fields of schema.graphql;
// guarded fields (estimatedCost: finance:read) only when the token carries their scope.

export const SPARK_DAYS = 90;

// freshness is read against the database's clock, so these answers are never response-cached.
const KPI_FIELDS = `id key name unit direction target latestValue status freshness latest { observedAt }`;

export const PORTFOLIO = `query DashboardPortfolio($from: DateTime!, $to: DateTime!, $first: Int! = 18, $after: String) {
  products(first: $first, after: $after, orderBy: {field: NAME}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes {
      id key name lifecycleStage
      openBlockers: constraints(first: 0, filter: {severities: [BLOCKER], statuses: [OPEN, MITIGATING]}) { totalCount }
      kpis(first: 4) { nodes { ${KPI_FIELDS} series(from: $from, to: $to, bucket: DAY) { bucketStart average count } } }
    }
  }
}`;

export function productQuery(withCost) {
  return `query DashboardProduct($key: String!, $from: DateTime!, $to: DateTime!) {
  product(key: $key) {
    id key name description lifecycleStage
    businessOwnerTeam { name }
    technologyOwnerTeam { name }
    kpis(first: 20) {
      nodes {
        ${KPI_FIELDS} itRelevance productRelevance itImportanceLevel productImportanceLevel
        trend(windowDays: 30) { direction change changePercent }
        series(from: $from, to: $to, bucket: DAY) { bucketStart average count }
      }
    }
    initiatives(first: 50) {
      nodes {
        id key title status targetStart targetEnd isBlocked
        riceScore wsjfScore
        rice { score explanation }
        wsjf { score explanation }
        blockedBy { key title severity status }
        ${withCost ? "estimatedCost" : ""}
      }
    }
    constraints(first: 50) {
      nodes { id key title category severity status dueDate mitigationPlan }
    }
  }
}`;
}

// The caller's budget and when it refills: asked on its own, since `rateLimit` in a view's
// query would keep the compiled read path from answering it (every answer's
// extensions.cost says what is left meanwhile).
export const BUDGET = `query DashboardBudget { rateLimit { limit remaining resetAt } }`;

// A KPI's latest value and status as they change (a measurement recorded, its
// definition edited), for the portfolio's cards.
export const KPI_CHANGED = `subscription DashboardKpiChanged {
  kpiChanged { change id kpi { ${KPI_FIELDS} } }
}`;

export const MEASURED = `subscription DashboardMeasured {
  measurementsRecorded { kpiId kpi { ${KPI_FIELDS} } measurements { observedAt value } }
}`;

// Anything in one product's neighbourhood. A KPI or a measurement of one carries the
// KPI as it is now (the view updates that row in place); anything else makes the view
// read itself afresh, at the pace the budget allows.
export const PRODUCT_CHANGED = `subscription DashboardProductChanged($key: String!) {
  productChanged(key: $key) {
    change id typename
    node {
      ... on Kpi { ${KPI_FIELDS} trend(windowDays: 30) { direction change changePercent } }
      ... on KpiMeasurement { observedAt value kpi { ${KPI_FIELDS} trend(windowDays: 30) { direction change changePercent } } }
    }
  }
}`;
