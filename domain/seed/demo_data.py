"""The demo portfolio of Harbour Lane, a fictional online retailer of home and outdoor goods.

Pure data, no database code: teams, products, a roadmap of themes and epics, the
technical constraints that limit it, how each product's KPIs behaved over the year,
and a glossary. ``demo.py`` loads it.

The story the data tells, for anyone exploring the API:
- Checkout and Payments are mature and reliable, but a bad release pushed the checkout
  incident rate to CRITICAL; search got slow (CRITICAL page load) as traffic grew.
- The legacy order desk (SUNSET) is failing: uptime and incident rate are CRITICAL.
- Five BLOCKERs are still OPEN or MITIGATING: wallet checkout waits for PCI DSS 4.0 script
  controls, marketplace search for cluster capacity, AI assistant work for an EU AI Act
  assessment (product-wide), personalised offers for consent data, and the Oracle
  decommission for finance reports. Two older BLOCKERs are RESOLVED and block nothing.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from domain.models import (
    ConstraintCategory,
    ConstraintSeverity,
    ConstraintStatus,
    InitiativeStatus,
    LifecycleStage,
    TeamKind,
)

S = InitiativeStatus
Cat = ConstraintCategory
Sev = ConstraintSeverity
CS = ConstraintStatus


class DemoTeam(NamedTuple):
    key: str
    kind: TeamKind
    name: str
    description: str


TEAMS = [
    DemoTeam("DIGITAL-COMMERCE", TeamKind.BUSINESS, "Digital Commerce",
             "Owns the online shop's revenue: catalog, search, checkout and the legacy order desk."),
    DemoTeam("PAYMENTS-PRODUCT", TeamKind.BUSINESS, "Payments Product",
             "Product management for payment methods, fees, fraud and refunds."),
    DemoTeam("CUSTOMER-EXPERIENCE", TeamKind.BUSINESS, "Customer Experience",
             "Accounts, mobile, loyalty and delivery: everything after the first order."),
    DemoTeam("PAYMENTS-ENG", TeamKind.TECHNOLOGY, "Payments Engineering",
             "Builds and runs the payment gateway, tokenisation and acquirer integrations."),
    DemoTeam("COMMERCE-ENG", TeamKind.TECHNOLOGY, "Commerce Engineering",
             "Checkout, catalog and fulfilment services and the web storefront."),
    DemoTeam("PLATFORM-SRE", TeamKind.TECHNOLOGY, "Platform & SRE",
             "Kubernetes, databases, observability, on-call and the SLO programme."),
    DemoTeam("DATA-ENG", TeamKind.TECHNOLOGY, "Data Engineering",
             "Search relevance, data pipelines, consent and customer data."),
    DemoTeam("MOBILE-SQUAD", TeamKind.CROSS_FUNCTIONAL, "Mobile Squad",
             "Product, design and engineering for the iOS and Android apps."),
    DemoTeam("GROWTH-SQUAD", TeamKind.CROSS_FUNCTIONAL, "Growth Squad",
             "Experiments on loyalty, referral and the AI shopping assistant."),
    DemoTeam("SECURITY-GUILD", TeamKind.CROSS_FUNCTIONAL, "Security & Compliance Guild",
             "Security engineers and compliance officers: PCI DSS, GDPR, identity."),
]  # fmt: skip


class DemoProduct(NamedTuple):
    key: str
    name: str
    stage: LifecycleStage
    business_owner: str
    technology_owner: str
    description: str


L = LifecycleStage
PRODUCTS = [
    DemoProduct("PAY", "Payments Platform", L.MATURE, "PAYMENTS-PRODUCT", "PAYMENTS-ENG",
                "Card, wallet and bank payments for web and app: authorisation, 3-D Secure, "
                "tokenised cards, refunds and settlement with two acquirers."),
    DemoProduct("CHK", "Checkout", L.MATURE, "DIGITAL-COMMERCE", "COMMERCE-ENG",
                "Cart to order confirmation: delivery options, guest checkout, address "
                "validation and the hand-over to payments."),
    DemoProduct("SRCH", "Product Search", L.GROWTH, "DIGITAL-COMMERCE", "DATA-ENG",
                "Full-text and faceted search with typo tolerance, synonyms and ranking "
                "tuned on sales data."),
    DemoProduct("CAT", "Catalog", L.MATURE, "DIGITAL-COMMERCE", "COMMERCE-ENG",
                "Product information: 180,000 items, attributes, images and supplier feeds."),
    DemoProduct("ACCT", "Customer Accounts", L.GROWTH, "CUSTOMER-EXPERIENCE", "PLATFORM-SRE",
                "Sign-in, profiles, addresses, consent and data-subject requests."),
    DemoProduct("MOB", "Mobile App", L.GROWTH, "CUSTOMER-EXPERIENCE", "MOBILE-SQUAD",
                "The iOS and Android shopping app: browse, wishlist, checkout, order tracking."),
    DemoProduct("LOY", "Harbour Rewards", L.DEVELOPMENT, "CUSTOMER-EXPERIENCE", "GROWTH-SQUAD",
                "The loyalty programme: points on every order, rewards and member tiers."),
    DemoProduct("FUL", "Delivery Tracking", L.MATURE, "CUSTOMER-EXPERIENCE", "COMMERCE-ENG",
                "Carrier integrations, live delivery tracking and delivery notifications."),
    DemoProduct("ASST", "AI Shopping Assistant", L.IDEA, "DIGITAL-COMMERCE", "DATA-ENG",
                "A conversational assistant that answers product questions and builds "
                "baskets; in discovery, measured on an internal beta."),
    DemoProduct("ORDL", "Legacy Order Desk", L.SUNSET, "DIGITAL-COMMERCE", "PLATFORM-SRE",
                "The call-centre order entry system on Oracle Forms, being replaced by the "
                "standard checkout and order service."),
]  # fmt: skip


class DemoInitiative(NamedTuple):
    key: str
    parent: str | None
    status: InitiativeStatus
    products: str  # space-separated product keys
    owner: str
    start: str | None  # "YYYY-MM"; None for a theme, which spans its epics
    months: int | None
    title: str
    summary: str


def theme(
    key: str, status: InitiativeStatus, products: str, owner: str, title: str, summary: str
) -> DemoInitiative:
    """A theme has no dates of its own: it spans its epics (see ``roadmap.roll_up``)."""
    return DemoInitiative(key, None, status, products, owner, None, None, title, summary)


I = DemoInitiative  # noqa: E741  (short, so the table below reads as a table)
INITIATIVES = [
    theme("TH-CHECKOUT", S.IN_PROGRESS, "CHK PAY", "DIGITAL-COMMERCE", "Frictionless checkout",
          "Fewer steps and more ways to pay between cart and confirmation."),
    I("CHK-101", "TH-CHECKOUT", S.DONE, "CHK", "COMMERCE-ENG", "2026-01", 4,
      "One-page checkout",
      "Delivery, payment and review on a single page; the A/B test showed +3.1% conversion."),
    I("CHK-102", "TH-CHECKOUT", S.DONE, "CHK ACCT", "COMMERCE-ENG", "2025-11", 3,
      "Guest checkout without an account",
      "Let first-time buyers order without registering; offer an account after the order."),
    I("CHK-103", "TH-CHECKOUT", S.APPROVED, "CHK PAY", "PAYMENTS-ENG", "2026-12", 4,
      "Express checkout with digital wallets",
      "Apple Pay and Google Pay as one-tap checkout from cart and product pages."),
    I("CHK-104", "CHK-103", S.APPROVED, "CHK PAY", "PAYMENTS-ENG", "2026-12", 2,
      "Apple Pay on the web shop",
      "Apple Pay button on cart and product pages for Safari users."),
    I("CHK-105", "CHK-103", S.PROPOSED, "MOB PAY", "MOBILE-SQUAD", "2027-01", 2,
      "Google Pay in the Android app",
      "Native Google Pay sheet in the app's checkout."),
    I("CHK-106", "TH-CHECKOUT", S.IN_PROGRESS, "CHK", "COMMERCE-ENG", "2026-09", 3,
      "Address autocomplete",
      "Suggest validated addresses while typing to cut failed deliveries and form drop-off."),
    I("CHK-107", "TH-CHECKOUT", S.PROPOSED, "CHK PAY", "PAYMENTS-PRODUCT", "2027-02", 5,
      "Buy now, pay later at checkout",
      "Instalment payments through a BNPL provider; market size still being researched."),
    I("CHK-108", "TH-CHECKOUT", S.CANCELLED, "CHK", "COMMERCE-ENG", "2026-03", 4,
      "Checkout in twelve languages",
      "Cancelled: superseded by the company-wide localisation platform."),

    theme("TH-PAYMENTS", S.IN_PROGRESS, "PAY", "PAYMENTS-PRODUCT", "Payments modernisation",
          "Higher authorisation rates, lower fees and self-service refunds."),
    I("PAY-201", "TH-PAYMENTS", S.IN_PROGRESS, "PAY", "PAYMENTS-ENG", "2026-06", 6,
      "Network tokens for stored cards",
      "Replace stored card numbers with scheme network tokens: fewer declines after card "
      "renewals and a smaller PCI scope."),
    I("PAY-202", "TH-PAYMENTS", S.APPROVED, "PAY", "PAYMENTS-ENG", "2027-01", 6,
      "Multi-acquirer routing",
      "Route each transaction to the acquirer with the best cost and approval rate."),
    I("PAY-203", "PAY-202", S.APPROVED, "PAY", "PAYMENTS-ENG", "2027-01", 3,
      "Acquirer failover on timeouts",
      "Retry on the second acquirer when the first times out, without double charging."),
    I("PAY-204", "TH-PAYMENTS", S.DONE, "PAY CHK", "PAYMENTS-ENG", "2025-10", 5,
      "3-D Secure 2 frictionless flow",
      "Send rich device data so most card payments pass strong authentication silently."),
    I("PAY-205", "TH-PAYMENTS", S.IN_PROGRESS, "PAY ACCT", "PAYMENTS-ENG", "2026-08", 4,
      "Self-service refunds",
      "Customers start refunds for returned items from their account; no support call."),
    I("PAY-206", "TH-PAYMENTS", S.PROPOSED, "PAY", "PAYMENTS-ENG", "2027-04", 9,
      "Event-sourced payment ledger",
      "Rebuild the ledger as an append-only event log for audit and reconciliation; not "
      "sized yet."),
    I("PAY-207", "TH-PAYMENTS", S.CANCELLED, "PAY", "PAYMENTS-PRODUCT", "2026-02", 3,
      "Cryptocurrency payments pilot",
      "Cancelled after legal review: regulatory cost outweighs the expected volume."),

    theme("TH-DISCOVERY", S.IN_PROGRESS, "SRCH CAT", "DIGITAL-COMMERCE",
          "Find it fast: search and discovery",
          "Customers find the right product in fewer queries and less time."),
    I("SRCH-301", "TH-DISCOVERY", S.IN_PROGRESS, "SRCH", "DATA-ENG", "2026-07", 5,
      "Search results in under 300 ms",
      "Bring p95 search latency under 300 ms and page load back under target."),
    I("SRCH-302", "SRCH-301", S.IN_PROGRESS, "SRCH", "PLATFORM-SRE", "2026-08", 4,
      "Dedicated nodes for the search cluster",
      "Move search off the shared node pool to stop noisy neighbours."),
    I("SRCH-303", "SRCH-301", S.APPROVED, "SRCH", "DATA-ENG", "2026-12", 2,
      "Cache popular queries at the edge",
      "Serve the top 5,000 queries from the CDN for a few minutes."),
    I("SRCH-304", "TH-DISCOVERY", S.DONE, "SRCH", "DATA-ENG", "2026-02", 3,
      "Typo tolerance and synonyms",
      "'Parasol' finds umbrellas and 'garden chiar' finds chairs."),
    I("SRCH-305", "TH-DISCOVERY", S.PROPOSED, "SRCH CAT", "DATA-ENG", "2027-03", 6,
      "Marketplace sellers in search",
      "Index 400,000 items from marketplace sellers next to our own catalog."),
    I("CAT-306", "TH-DISCOVERY", S.DONE, "CAT SRCH", "COMMERCE-ENG", "2025-12", 4,
      "Rich product attributes and facets",
      "Structured attributes (material, size, colour) that drive search filters."),
    I("CAT-307", "TH-DISCOVERY", S.IN_PROGRESS, "CAT", "COMMERCE-ENG", "2026-09", 4,
      "Bulk import API for suppliers",
      "Suppliers upload product data through an API instead of spreadsheets."),
    I("ASST-308", "TH-DISCOVERY", S.APPROVED, "ASST SRCH", "GROWTH-SQUAD", "2026-12", 3,
      "AI shopping assistant discovery",
      "Interview customers and test a prototype that answers product questions."),
    I("ASST-309", "TH-DISCOVERY", S.PROPOSED, "ASST", "GROWTH-SQUAD", "2027-03", 4,
      "Assistant beta for 5% of traffic",
      "A controlled beta on the web shop, measured on conversion and contact rate."),

    theme("TH-MOBILE", S.IN_PROGRESS, "MOB ACCT", "CUSTOMER-EXPERIENCE",
          "Mobile-first customer experience",
          "Make the app the fastest way to shop and to follow an order."),
    I("MOB-401", "TH-MOBILE", S.DONE, "MOB", "MOBILE-SQUAD", "2026-01", 5,
      "Native app redesign",
      "New navigation and design system shared by iOS and Android."),
    I("MOB-402", "TH-MOBILE", S.IN_PROGRESS, "MOB CHK", "MOBILE-SQUAD", "2026-08", 4,
      "Offline wishlist and cart sync",
      "Wishlist and cart work offline and sync across devices."),
    I("MOB-403", "TH-MOBILE", S.DONE, "MOB FUL", "MOBILE-SQUAD", "2026-03", 2,
      "Push notifications for order status",
      "Notify customers when an order ships, is out for delivery and arrives."),
    I("MOB-404", "TH-MOBILE", S.IN_PROGRESS, "MOB", "MOBILE-SQUAD", "2026-10", 3,
      "App screens in under two seconds",
      "Cut image weight and API round trips on product and listing screens."),
    I("ACCT-405", "TH-MOBILE", S.APPROVED, "ACCT MOB", "SECURITY-GUILD", "2026-12", 4,
      "Passkey sign-in",
      "Phishing-resistant sign-in without passwords on web and app."),
    I("ACCT-406", "ACCT-405", S.PROPOSED, "ACCT MOB", "MOBILE-SQUAD", "2027-01", 3,
      "Passkeys on iOS and Android",
      "Platform passkey APIs in the native apps."),
    I("MOB-407", "TH-MOBILE", S.CANCELLED, "MOB", "MOBILE-SQUAD", "2026-05", 3,
      "Tablet layout",
      "Cancelled: tablets are 2% of app sessions."),

    theme("TH-LOYALTY", S.IN_PROGRESS, "LOY ACCT", "CUSTOMER-EXPERIENCE",
          "Loyalty and retention",
          "Bring customers back: rewards, tiers and referrals."),
    I("LOY-501", "TH-LOYALTY", S.IN_PROGRESS, "LOY CHK", "GROWTH-SQUAD", "2026-09", 4,
      "Points on every order",
      "Earn points at checkout and redeem them on the next order."),
    I("LOY-502", "TH-LOYALTY", S.APPROVED, "LOY ACCT", "GROWTH-SQUAD", "2027-01", 5,
      "Silver and Gold member tiers",
      "Free delivery and early access for frequent customers."),
    I("LOY-503", "TH-LOYALTY", S.APPROVED, "LOY", "DATA-ENG", "2027-02", 3,
      "Personalised offers by email",
      "Offers chosen from purchase history, sent only to customers who consented."),
    I("LOY-504", "TH-LOYALTY", S.PROPOSED, "LOY", "GROWTH-SQUAD", "2027-06", 6,
      "Partner rewards marketplace",
      "Spend points with partner brands; timing depends on partner contracts."),
    I("LOY-505", "TH-LOYALTY", S.PROPOSED, "LOY ACCT", "GROWTH-SQUAD", "2027-04", 3,
      "Refer a friend",
      "Both customers earn points when a referred friend places a first order."),

    theme("TH-RELIABILITY", S.IN_PROGRESS, "CHK PAY SRCH", "PLATFORM-SRE",
          "Reliability and platform health",
          "Agreed SLOs, fewer incidents and headroom for peak season."),
    I("CHK-601", "TH-RELIABILITY", S.DONE, "CHK", "PLATFORM-SRE", "2025-11", 3,
      "Multi-AZ database for checkout",
      "Run the checkout database across three availability zones with automatic failover."),
    I("CHK-602", "TH-RELIABILITY", S.IN_PROGRESS, "CHK PAY SRCH", "PLATFORM-SRE", "2026-04", 9,
      "SLOs and error budgets for customer-facing services",
      "Agree SLOs with product owners and manage releases by error budget."),
    I("CHK-603", "CHK-602", S.DONE, "CHK PAY", "PLATFORM-SRE", "2026-04", 2,
      "Error-budget burn alerts",
      "Page on fast burn, ticket on slow burn, instead of static thresholds."),
    I("CHK-604", "CHK-602", S.IN_PROGRESS, "CHK", "PLATFORM-SRE", "2026-09", 3,
      "Error-budget policy signed by product",
      "What happens when the budget is spent, agreed before it is."),
    I("CHK-605", "TH-RELIABILITY", S.IN_PROGRESS, "CHK", "COMMERCE-ENG", "2026-08", 6,
      "Halve the checkout incident rate",
      "Canary releases, contract tests with payments and a bug bash before peak season."),
    I("PAY-606", "TH-RELIABILITY", S.PROPOSED, "PAY", "PLATFORM-SRE", "2027-02", 3,
      "Chaos testing for payment flows",
      "Inject acquirer timeouts and database failovers in staging every week."),
    I("SRCH-607", "TH-RELIABILITY", S.APPROVED, "SRCH CAT", "PLATFORM-SRE", "2026-11", 2,
      "Kubernetes upgrade to a supported version",
      "Upgrade the search and catalog clusters before end of support."),

    theme("TH-COMPLIANCE", S.IN_PROGRESS, "PAY ACCT", "SECURITY-GUILD",
          "Security and compliance",
          "Stay certified and keep customer data safe."),
    I("PAY-701", "TH-COMPLIANCE", S.IN_PROGRESS, "PAY CHK", "SECURITY-GUILD", "2026-01", 12,
      "PCI DSS 4.0 readiness",
      "Close the gaps found in the 4.0 pre-assessment before the next audit."),
    I("PAY-702", "PAY-701", S.IN_PROGRESS, "PAY CHK", "SECURITY-GUILD", "2026-06", 7,
      "Payment page script inventory and integrity",
      "Content Security Policy, subresource integrity and an approved-script inventory "
      "(requirements 6.4.3 and 11.6.1)."),
    I("ACCT-703", "TH-COMPLIANCE", S.DONE, "ACCT", "DATA-ENG", "2026-02", 4,
      "Automated GDPR data-subject requests",
      "Access and erasure requests answered by a workflow across all systems."),
    I("ACCT-704", "TH-COMPLIANCE", S.IN_PROGRESS, "ACCT LOY", "DATA-ENG", "2026-09", 3,
      "Consent record migration",
      "Move marketing consent with its history from the old CRM to the consent service."),
    I("ACCT-705", "TH-COMPLIANCE", S.APPROVED, "ACCT PAY", "PLATFORM-SRE", "2026-12", 2,
      "Short-lived database credentials",
      "Issue database credentials per job from the secrets manager; remove static ones."),
    I("ACCT-706", "TH-COMPLIANCE", S.DONE, "ACCT CHK MOB", "CUSTOMER-EXPERIENCE", "2025-12", 6,
      "Accessibility for the European Accessibility Act",
      "WCAG 2.1 AA for sign-in, checkout and the app."),

    theme("TH-LEGACY", S.IN_PROGRESS, "ORDL FUL", "DIGITAL-COMMERCE",
          "Retire the legacy order desk",
          "One order path for web, app and call centre; switch off Oracle Forms."),
    I("ORDL-801", "TH-LEGACY", S.APPROVED, "ORDL CHK", "COMMERCE-ENG", "2026-12", 4,
      "Phone orders through the standard checkout",
      "Call-centre agents use an assisted mode of the web checkout."),
    I("ORDL-802", "TH-LEGACY", S.IN_PROGRESS, "ORDL FUL", "DATA-ENG", "2026-10", 5,
      "Migrate order history to the order service",
      "Twelve years of orders, with returns and notes, readable from the new service."),
    I("FUL-803", "TH-LEGACY", S.DONE, "FUL MOB", "COMMERCE-ENG", "2026-01", 4,
      "Live delivery tracking",
      "Carrier events shown on a map in the app and in emails."),
    I("FUL-804", "TH-LEGACY", S.PROPOSED, "FUL", "COMMERCE-ENG", "2027-02", 4,
      "One carrier integration layer",
      "Replace five carrier adapters with one integration layer."),
    I("ORDL-805", "TH-LEGACY", S.PROPOSED, "ORDL", "PLATFORM-SRE", "2027-05", 3,
      "Decommission the Oracle order database",
      "Archive, switch off and cancel the Oracle licence."),
]  # fmt: skip

# Deliberately incomplete scoring inputs: these initiatives have no RICE or WSJF score.
# (Themes are never scored: they are containers; their cost is their epics' total.)
MISSING_SCORE_INPUTS: dict[str, tuple[str, ...]] = {
    "CHK-107": ("reach",),  # BNPL market size still being researched
    "PAY-206": ("job_size",),  # not sized yet
    "ASST-309": ("confidence", "effort", "estimated_cost"),  # no estimates before discovery
    "LOY-504": ("time_criticality",),  # depends on partner contracts
}


class DemoConstraint(NamedTuple):
    key: str
    category: ConstraintCategory
    severity: ConstraintSeverity
    status: ConstraintStatus
    products: str  # space-separated product keys
    initiatives: str  # space-separated initiative keys
    due: date | None
    title: str
    description: str
    mitigation: str | None


C = DemoConstraint
CONSTRAINTS = [
    # BLOCKERs still in force: the initiatives they reach are blocked.
    C("TC-02", Cat.COMPLIANCE, Sev.BLOCKER, CS.MITIGATING, "", "CHK-103 CHK-104",
      date(2026, 12, 15), "PCI DSS 4.0: no inventory of scripts on payment pages",
      "Requirement 6.4.3 needs every script on a payment page authorised and its integrity "
      "checked; new wallet buttons add third-party scripts.",
      "PAY-702 adds a Content Security Policy, subresource integrity and a script inventory."),
    C("TC-03", Cat.SCALABILITY, Sev.BLOCKER, CS.OPEN, "", "SRCH-305",
      date(2027, 1, 31), "Search cluster has no headroom for marketplace items",
      "Heap usage is at 85% at peak; 400,000 more documents would exhaust it.",
      "Dedicated nodes (SRCH-302) and index sharding by category."),
    C("TC-04", Cat.LEGAL, Sev.BLOCKER, CS.OPEN, "ASST", "",
      date(2026, 12, 31), "EU AI Act assessment before a customer-facing assistant",
      "Legal must classify the assistant and document transparency duties before any "
      "customer sees it.",
      "Risk classification workshop with legal; transparency notice drafted."),
    C("TC-05", Cat.DATA, Sev.BLOCKER, CS.OPEN, "", "LOY-503",
      date(2027, 1, 15), "Marketing consent incomplete after the CRM migration",
      "For 14% of customers the consent history was not migrated; emailing them offers "
      "would breach GDPR.",
      "ACCT-704 migrates the remaining consent records with their history."),
    C("TC-06", Cat.ARCHITECTURE, Sev.BLOCKER, CS.MITIGATING, "", "ORDL-805",
      date(2027, 3, 31), "Finance reports read the order desk database directly",
      "Month-end reports query Oracle tables; switching the database off would stop them.",
      "Finance moves its reports to the order service's reporting views."),
    # BLOCKERs that no longer block.
    C("TC-01", Cat.SECURITY, Sev.BLOCKER, CS.RESOLVED, "PAY", "",
      date(2026, 3, 31), "TLS 1.0 and 1.1 accepted by the payment gateway",
      "Old protocol versions allowed downgrade attacks and failed the PCI scan.",
      "Disabled at the load balancer after merchants on old SDKs upgraded."),
    C("TC-07", Cat.INFRASTRUCTURE, Sev.BLOCKER, CS.RESOLVED, "CHK", "CHK-601",
      date(2026, 1, 31), "Checkout database in a single availability zone",
      "An availability-zone outage would stop all orders.",
      "CHK-601 moved it to a multi-AZ cluster with automatic failover."),
    # Everything else: limits to plan around, not stop signs.
    C("TC-08", Cat.PERFORMANCE, Sev.HIGH, CS.OPEN, "MOB CAT", "MOB-404",
      date(2027, 2, 28), "Product pages over 2.5 s on mid-range Android phones",
      "Full-size images and four sequential API calls per product screen.",
      "Responsive images and one aggregated product endpoint."),
    C("TC-09", Cat.SECURITY, Sev.HIGH, CS.MITIGATING, "ACCT PAY", "ACCT-705",
      date(2026, 12, 31), "Long-lived database credentials in CI pipelines",
      "Static passwords in CI variables never rotate and are shared between jobs.",
      "ACCT-705 issues short-lived credentials per job."),
    C("TC-10", Cat.COMPLIANCE, Sev.HIGH, CS.RESOLVED, "ACCT", "ACCT-703",
      date(2026, 5, 31), "GDPR erasure requests handled by hand",
      "Manual erasure across nine systems risked missing the one-month deadline.",
      "ACCT-703 automated the workflow."),
    C("TC-11", Cat.ARCHITECTURE, Sev.MEDIUM, CS.ACCEPTED, "CHK", "",
      None, "Checkout and cart share one database schema",
      "Schema changes need both teams and one release.",
      "Accepted until 2027: splitting costs more than it saves at current change rates."),
    C("TC-12", Cat.INFRASTRUCTURE, Sev.MEDIUM, CS.OPEN, "SRCH CAT", "SRCH-607",
      date(2027, 1, 31), "Kubernetes 1.28 reaches end of support",
      "No security patches for the search and catalog clusters after January.",
      "SRCH-607 upgrades both clusters."),
    C("TC-13", Cat.DATA, Sev.MEDIUM, CS.MITIGATING, "CAT", "CAT-307",
      date(2027, 2, 28), "Supplier attributes are inconsistent",
      "Units, colours and sizes arrive in 30 different spellings.",
      "The bulk import API validates against the attribute dictionary."),
    C("TC-14", Cat.PERFORMANCE, Sev.MEDIUM, CS.RESOLVED, "SRCH", "SRCH-304",
      date(2026, 4, 30), "Search autocomplete p95 above 800 ms",
      "Autocomplete queried the full index on every keystroke.",
      "A dedicated prefix index."),
    C("TC-15", Cat.LEGAL, Sev.HIGH, CS.RESOLVED, "CHK MOB ACCT", "ACCT-706",
      date(2025, 6, 28), "European Accessibility Act: WCAG 2.1 AA for shopping",
      "Sign-in, checkout and the app must be accessible since June 2025.",
      "ACCT-706 fixed the audit findings."),
    C("TC-16", Cat.OTHER, Sev.LOW, CS.ACCEPTED, "ACCT", "",
      None, "Single vendor for SMS one-time passwords",
      "An outage at the SMS vendor stops two-factor sign-in by SMS.",
      "Accepted: passkeys (ACCT-405) make SMS a fallback."),
    C("TC-17", Cat.SCALABILITY, Sev.HIGH, CS.MITIGATING, "CHK", "CHK-602",
      date(2026, 11, 20), "Flash-sale traffic exceeds checkout autoscaling limits",
      "Last Black Friday the checkout pods hit the node-pool maximum for 40 minutes.",
      "Raise node-pool limits and pre-scale before announced sales."),
    C("TC-18", Cat.OTHER, Sev.MEDIUM, CS.OPEN, "ORDL", "ORDL-802",
      date(2027, 1, 31), "One engineer knows the Oracle Forms code",
      "Key-person risk for the migration and for incidents on the order desk.",
      "Pair on every change; record the order rules as tests."),
    C("TC-19", Cat.SECURITY, Sev.LOW, CS.OPEN, "FUL", "",
      date(2027, 3, 31), "Weak TLS cipher suites on carrier callbacks",
      "Two carriers still call back with CBC ciphers.",
      None),
    C("TC-20", Cat.DATA, Sev.LOW, CS.RESOLVED, "ACCT", "CHK-102",
      date(2026, 3, 31), "Duplicate customer profiles after guest checkout",
      "Guests who later register end up with two profiles.",
      "Profiles are merged on email verification."),
    C("TC-21", Cat.LEGAL, Sev.MEDIUM, CS.OPEN, "LOY", "LOY-501",
      date(2027, 3, 31), "Points liability must be reported (IFRS 15)",
      "Unredeemed points are a liability finance must estimate every month.",
      "Daily points balance export to the finance data warehouse."),
    C("TC-22", Cat.INFRASTRUCTURE, Sev.LOW, CS.ACCEPTED, "ORDL", "",
      None, "Order desk on on-premises virtual machines",
      "No autoscaling and manual patching for the order desk.",
      "Accepted until decommission (TH-LEGACY)."),
]  # fmt: skip


class KpiProfile(NamedTuple):
    """How one KPI moved over the year: (start level, end level); the end decides status."""

    start: float
    end: float


class ProductKpis(NamedTuple):
    adoption_feature: str  # what "feature adoption" means for this product
    adoption_thresholds: tuple[float, float, float]  # target, warning, critical
    uptime: KpiProfile
    adoption: KpiProfile
    load_time: KpiProfile
    incidents: KpiProfile


P = KpiProfile
# Comments name the KPIs that end WARNING or CRITICAL (thresholds in kpi_kinds.py). Nine
# more end OFF_TARGET, short of their target but better than warning: adoption of PAY,
# CHK and ACCT, load time of CHK and ASST, incidents of SRCH, MOB and ASST, uptime of ASST.
PRODUCT_KPIS: dict[str, ProductKpis] = {
    "PAY": ProductKpis("one-click payment with a saved card", (45, 30, 20),
                       P(99.93, 99.97), P(34, 41), P(1400, 1250), P(0.7, 0.45)),
    "CHK": ProductKpis("guest checkout", (35, 20, 10),
                       P(99.9, 99.95), P(10, 28), P(1700, 1600),
                       P(0.8, 2.3)),  # incidents CRITICAL: a bad release in October
    "SRCH": ProductKpis("search filters and facets", (30, 20, 12),
                        P(99.95, 99.92), P(22, 31),
                        P(2300, 4200),  # load time CRITICAL: traffic outgrew the cluster
                        P(0.5, 0.6)),
    "CAT": ProductKpis("supplier bulk import", (40, 20, 10),
                       P(99.96, 99.96),
                       P(5, 18),  # adoption WARNING: suppliers still send spreadsheets
                       P(1500, 1450), P(0.3, 0.3)),
    "ACCT": ProductKpis("self-service profile and preferences", (30, 15, 8),
                        P(99.8, 99.45),  # uptime WARNING: identity provider incidents
                        P(12, 26), P(1100, 1000), P(0.4, 0.5)),
    "MOB": ProductKpis("in-app wishlist", (50, 35, 25),
                       P(99.93, 99.93), P(40, 52),
                       P(3400, 2700),  # load time WARNING, improving
                       P(1.1, 0.8)),
    "LOY": ProductKpis("points redemption", (25, 15, 10),
                       P(99.91, 99.91),
                       P(9, 14),  # adoption WARNING: programme still ramping up
                       P(1600, 1500), P(0.6, 0.4)),
    "FUL": ProductKpis("live delivery tracking", (40, 25, 15),
                       P(99.95, 99.94), P(30, 55), P(1300, 1250),
                       P(0.6, 1.2)),  # incidents WARNING: a flaky carrier API
    "ASST": ProductKpis("shopping assistant (internal beta)", (15, 8, 4),
                        P(99.6, 99.7),
                        P(2, 6),  # adoption WARNING: beta users still few
                        P(1900, 1800), P(1.5, 0.9)),
    "ORDL": ProductKpis("quick-order screen", (30, 15, 5),
                        P(99.4, 98.7),  # uptime CRITICAL: ageing hardware
                        P(35, 31),
                        P(3100, 3600),  # load time WARNING
                        P(1.6, 2.1)),  # incidents CRITICAL
}  # fmt: skip

# Who watches which KPI: uptime is SRE's, adoption the business owner's, the rest the builders'.
UPTIME_OWNER = "PLATFORM-SRE"

# Initiatives that exist to move a KPI.
INITIATIVE_KPIS = [
    ("SRCH-301", "SRCH-LOAD-TIME"),
    ("SRCH-302", "SRCH-LOAD-TIME"),
    ("MOB-404", "MOB-LOAD-TIME"),
    ("CHK-605", "CHK-INCIDENTS"),
    ("CHK-602", "CHK-UPTIME"),
    ("CHK-602", "PAY-UPTIME"),
    ("CHK-602", "SRCH-UPTIME"),
    ("LOY-501", "LOY-ADOPTION"),
    ("CHK-102", "CHK-ADOPTION"),
    ("ORDL-801", "ORDL-INCIDENTS"),
]


class DemoTerm(NamedTuple):
    term: str
    definition: str
    business_meaning: str
    technical_meaning: str


T = DemoTerm
GLOSSARY = [
    T("SLA",
      "Service level agreement: a contractual promise about a service's availability or "
      "responsiveness, with consequences such as credits when it is missed.",
      "What we promise customers and partners, and can be penalised for.",
      "An external commitment set looser than the internal SLO, so engineering has margin."),
    T("SLO",
      "Service level objective: an internal target for a measured service level over a "
      "window, e.g. 99.9% of checkout requests succeed over 30 days.",
      "The reliability customers need, agreed with engineering; more nines cost more.",
      "Computed from service level indicators; drives alerting, error budgets and capacity."),
    T("Error budget",
      "The unreliability an SLO allows: 99.9% over 30 days leaves about 43 minutes.",
      "A shared currency to trade reliability against feature speed.",
      "When it is spent, risky releases stop and reliability work goes first."),
    T("MVP",
      "Minimum viable product: the smallest release that tests a product hypothesis with "
      "real users.",
      "Learn whether an idea works before investing fully; success criteria set upfront.",
      "Narrow scope, not low quality; any shortcut is recorded as technical debt."),
    T("Technical debt",
      "The future cost of shortcuts and outdated design in code and infrastructure.",
      "Slows every later feature and raises incident risk; paying it down is an investment.",
      "Tracked, sized and scheduled like features; its interest shows in lead time and "
      "incident rate."),
    T("RICE",
      "A prioritisation score: reach × impact × confidence ÷ effort.",
      "Compares initiatives by expected value per unit of effort.",
      "Effort is engineering's estimate in person-months; confidence prices its uncertainty."),
    T("WSJF",
      "Weighted shortest job first: (business value + time criticality + risk reduction) ÷ "
      "job size.",
      "Sequences work by the cost of delaying it.",
      "Risk reduction lets platform and security work compete fairly with features."),
    T("Uptime",
      "The share of time a service is available to its users, in percent.",
      "Downtime means lost orders, support calls and lost trust.",
      "Measured by synthetic checks and request success rate, and compared with the SLO."),
    T("Adoption rate",
      "The share of active users who use a feature within a period.",
      "Shows whether a shipped feature delivers value: iterate, promote or retire it.",
      "Needs event instrumentation; tells which features deserve maintenance and capacity."),
    T("Page load time",
      "How long a page takes to show its main content; here the 75th percentile Largest "
      "Contentful Paint.",
      "Slower pages convert less and rank lower in search engines.",
      "Shaped by page weight, API latency, caching and the CDN; watched per release."),
    T("Lead time",
      "The time from a change being committed until it runs in production.",
      "How fast an idea reaches customers once built.",
      "A DORA metric, shortened by automation, small batches and trunk-based development."),
    T("Incident",
      "An unplanned interruption or degradation of a service.",
      "Customer impact, customer communication and possibly SLA credits.",
      "Handled by on-call by severity, followed by a blameless post-incident review."),
    T("Roadmap",
      "A time-ordered plan of themes and initiatives.",
      "Communicates intent and priorities, not fixed promises.",
      "Shows where capacity goes, including platform and debt work, and what depends on "
      "what."),
    T("Theme",
      "A strategic goal that groups epics, such as 'Frictionless checkout'.",
      "Where budget and outcomes are discussed.",
      "Spans several teams and products; has no estimate of its own."),
    T("Epic",
      "A large piece of work that delivers one outcome; may be split into sub-epics.",
      "The unit roadmaps, budgets and priorities (RICE, WSJF) track.",
      "The unit of delivery planning, estimated and linked to products and constraints."),
    T("Technical constraint",
      "A limitation from security, compliance, scalability, architecture, data or law that "
      "restricts what can ship.",
      "Explains why some roadmap items cost more or take longer than expected.",
      "Recorded with a severity, a status and a mitigation plan, on products or initiatives."),
    T("Blocker",
      "A technical constraint of severity BLOCKER that is OPEN or MITIGATING; the "
      "initiatives it applies to, directly or through a product, cannot start.",
      "Why a roadmap item is stuck, and what has to happen to unstick it.",
      "Must be resolved, or accepted as a risk, before work moves to IN_PROGRESS."),
    T("KPI",
      "Key performance indicator: a measured value with a target and warning and critical "
      "thresholds.",
      "Tracks whether a product delivers its outcomes.",
      "Fed by monitoring pipelines; its latest value and trend decide its status."),
]  # fmt: skip
