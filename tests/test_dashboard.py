"""The dashboard at ``/``: its files (served with their types, nothing from another host,
no inline code under a strict CSP), the public client it signs in with, its documents
against the schema, and, in headless Chromium, what people do with it: sign in through
the real sign-in form, read the portfolio and a product, watch a KPI change live, sign
out (revoking), renew tokens with rotation, see no costs without ``finance:read``, and
be told plainly when access is missing, the session ended or the budget is spent.
Each browser test saves screenshots in its tmp_path (printed as ``screenshot: ...``)."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import func, select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from typer.testing import CliRunner

import dashboard
from api.app import assemble_app, create_app, dashboard_addresses
from api.cli import app as cli
from auth import identity
from auth.models import OAuthClient, RefreshToken, User
from domain import models
from domain.settings import Settings, get_settings
from tests.conftest import make_client, settings_for
from tests.fixtures.auth import bearer, user_with_roles
from tests.fixtures.server import InProcessServer, served_in_process
from tests.test_graphiql import BROWSER, POLL_SECONDS, Page, _chromium, _requested_urls

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "dashboard" / "static"
PASSWORD = "correct horse battery staple"
# The one absolute URL in the scripts: the SVG namespace, a name that is never fetched.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"
IMPORTS = re.compile(r"""^import\s[^;]*?from\s+"(\./[a-z-]+\.js)";""", re.MULTILINE)


# ---- the files ---------------------------------------------------------------------


async def _module_graph(client: httpx.AsyncClient, entry: str) -> dict[str, httpx.Response]:
    """Every script the page's entry module imports, directly or not, as served."""
    found: dict[str, httpx.Response] = {}
    waiting = [entry]
    while waiting:
        url = waiting.pop()
        if url in found:
            continue
        found[url] = response = await client.get(url)
        for imported in IMPORTS.findall(response.text):
            waiting.append(f"{dashboard.PREFIX}/{imported.removeprefix('./')}")
    return found


async def test_the_page_and_its_files_are_served_with_their_types(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "connect-src 'self' ws://test wss://test;" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"

    page = Page(response.text)
    assert page.inline == []  # nothing a strict CSP would refuse
    assert ("meta", {"name": "oauth-client-id", "content": identity.DASHBOARD_CLIENT_ID}) in (
        page.tags
    )
    [script] = page.scripts()
    assert script == {"type": "module", "src": "dashboard/main.js"}
    [style] = page.stylesheets()
    assert style["href"] == "dashboard/app.css"

    css = await client.get("/dashboard/app.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["x-content-type-options"] == "nosniff"
    modules = await _module_graph(client, "/dashboard/main.js")
    # Every script shipped is one the page loads, and each comes as JavaScript.
    assert sorted(url.split("/")[-1] for url in modules) == sorted(
        name for name in dashboard.ASSETS if name.endswith(".js")
    )
    assert len(modules) == 9
    for url, served in modules.items():
        assert served.status_code == 200, url
        assert served.headers["content-type"] == "text/javascript; charset=utf-8", url
        assert served.headers["cache-control"] == "no-cache"
        assert served.content == (STATIC / url.split("/")[-1]).read_bytes()


async def test_the_page_references_nothing_off_origin(client: httpx.AsyncClient) -> None:
    """No host, no protocol-relative address: only paths relative to the page, which the
    browser resolves on the origin (and under a proxy's path prefix)."""
    page = Page((await client.get("/", headers=BROWSER)).text)
    for url in page.urls():
        assert url.startswith(("dashboard/", "data:", "graphql", "#")), url
    texts = {name: (STATIC / name).read_text() for name in dashboard.ASSETS}
    texts["index.html"] = (STATIC / "index.html").read_text()
    for name, text in texts.items():
        absolute = re.findall(r"(?:https?|wss?):?//[^\s\"'`)]*", text)
        assert [url for url in absolute if url != SVG_NAMESPACE] == [], name
        assert re.findall(r"[\"'`(]\s*//", text) == [], name  # a protocol-relative literal
        if name.endswith(".css"):  # what a stylesheet may fetch
            assert "@import" not in text and "url(" not in text, name
    # What the scripts talk to: /graphql (HTTP and WebSocket) and /oauth/*.
    spoken = set(re.findall(r'new URL\("([a-z/]+)"', "\n".join(texts.values())))
    assert spoken == {"graphql", "oauth/authorize", "oauth/token", "oauth/revoke"}


async def test_only_the_pages_files_are_served(client: httpx.AsyncClient) -> None:
    for path in ("index.html", "routes.py", "..%2Froutes.py", "../__init__.py", "missing.js"):
        response = await client.get(f"{dashboard.PREFIX}/{path}")
        assert response.status_code == 404, path
        assert response.text == "Not Found"


async def test_production_serves_the_page_too(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """It is for business people: unlike GraphiQL, it is there in production."""
    async with make_client(engine, sessions, environment="production") as production:
        page = await production.get("/", headers=BROWSER)
        assert page.status_code == 200
        assert '<script type="module" src="dashboard/main.js"></script>' in page.text
        assert (await production.get("/dashboard/main.js")).status_code == 200


def test_an_installed_package_ships_the_files() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dashboard*" in config["tool"]["setuptools"]["packages"]["find"]["include"]
    patterns = config["tool"]["setuptools"]["package-data"]["dashboard"]
    shipped = {
        path.name
        for pattern in patterns
        for path in (ROOT / "dashboard").glob(pattern)
        if path.is_file()
    }
    assert shipped == {*dashboard.ASSETS, "index.html"}
    # The image builds its wheel from the folders it copies.
    assert "COPY dashboard/ dashboard/" in (ROOT / "Dockerfile").read_text().splitlines()


# ---- the documents it sends ----------------------------------------------------------


def _documents() -> dict[str, str]:
    """The page's GraphQL documents, as queries.js builds them."""
    source = (STATIC / "queries.js").read_text()
    constants = dict(re.findall(r"^const ([A-Z_]+) = `([^`]*)`;", source, re.MULTILINE))

    def filled(text: str, with_cost: bool = False) -> str:
        for name, value in constants.items():
            text = text.replace("${" + name + "}", value)
        return text.replace(
            '${withCost ? "estimatedCost" : ""}', "estimatedCost" if with_cost else ""
        )

    documents = {
        name: filled(text)
        for name, text in re.findall(r"^export const ([A-Z_]+) = `([^`]*)`;", source, re.MULTILINE)
    }
    product = re.search(r"return `(query DashboardProduct[^`]*)`;", source)
    assert product is not None
    documents["PRODUCT"] = filled(product.group(1))
    documents["PRODUCT_WITH_COST"] = filled(product.group(1), with_cost=True)
    assert "${" not in "".join(documents.values())
    return documents


WINDOW = {"from": "2026-08-03T00:00:00Z", "to": "2026-11-02T00:00:00Z"}


async def test_its_queries_answer_within_the_default_cost_limit(
    db: AsyncSession, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Every view is one request under the default cost limit, answered by the compiled
    read path (development says which path answered); estimatedCost only when the token
    carries finance:read."""
    app = assemble_app(settings_for(), engine, sessions)
    documents = _documents()
    limit = Settings.model_fields["max_query_cost"].default
    products = await db.scalar(select(func.count()).select_from(models.Product))
    viewer = await user_with_roles(db, "admin")
    with_finance = await bearer(app, db, ["portfolio:read", "finance:read"], user=viewer)
    without = await bearer(app, db, ["portfolio:read"], user=viewer)
    async with make_client(engine, sessions, app=app) as http:
        answer = (
            await http.post(
                "/graphql",
                json={"query": documents["PORTFOLIO"], "variables": WINDOW},
                headers=with_finance,
            )
        ).json()
        assert "errors" not in answer
        assert answer["extensions"]["cost"]["requested"] <= limit
        assert answer["extensions"]["answeredBy"] in {"compiled", "cached"}
        nodes = answer["data"]["products"]["nodes"]
        assert len(nodes) == answer["data"]["products"]["totalCount"] == products
        assert all(len(node["kpis"]["nodes"]) == 4 for node in nodes)

        for name, headers in (("PRODUCT_WITH_COST", with_finance), ("PRODUCT", without)):
            answer = (
                await http.post(
                    "/graphql",
                    json={"query": documents[name], "variables": {"key": "PAY", **WINDOW}},
                    headers=headers,
                )
            ).json()
            assert "errors" not in answer, name
            assert answer["extensions"]["cost"]["requested"] <= limit
            initiatives = answer["data"]["product"]["initiatives"]["nodes"]
            assert initiatives
            assert all(
                ("estimatedCost" in one) == (name == "PRODUCT_WITH_COST") for one in initiatives
            )

        # The same document with costs, for a token without finance:read: FORBIDDEN,
        # which the page answers by asking again without them.
        refused = (
            await http.post(
                "/graphql",
                json={
                    "query": documents["PRODUCT_WITH_COST"],
                    "variables": {"key": "PAY", **WINDOW},
                },
                headers=without,
            )
        ).json()
        assert {error["extensions"]["code"] for error in refused["errors"]} == {"FORBIDDEN"}


# ---- the public client ---------------------------------------------------------------


def test_dashboard_addresses_of_the_demo() -> None:
    assert dashboard_addresses("http://127.0.0.1:8000") == [
        "http://127.0.0.1:8000/",
        "http://localhost:8000/",
    ]
    assert dashboard_addresses("https://portfolio.example.com/") == [
        "https://portfolio.example.com/"
    ]
    # Plain http elsewhere than this machine is never a redirect URI.
    assert dashboard_addresses("http://0.0.0.0:8000") == []


async def _client_row(url: str) -> OAuthClient | None:
    return (await _client_and_history(url))[0]


async def _client_and_history(url: str) -> tuple[OAuthClient | None, list[str]]:
    """The dashboard's client and the actions its audit trail records."""
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            client = await session.scalar(
                select(OAuthClient).where(OAuthClient.client_id == identity.DASHBOARD_CLIENT_ID)
            )
            if client is None:
                return None, []
            actions = await session.scalars(
                select(models.AuditEvent.action)
                .where(
                    models.AuditEvent.entity_type == "OAuthClient",
                    models.AuditEvent.entity_id == client.id,
                )
                .order_by(models.AuditEvent.id)
            )
            return client, [action.value for action in actions]
    finally:
        await engine.dispose()


async def test_demo_registers_the_public_client(own_database: str, tmp_path: Path) -> None:
    app = create_app(
        settings_for(data_dir=tmp_path, issuer="http://127.0.0.1:8123"),
        database_url=own_database,
        demo=True,
    )
    async with app.router.lifespan_context(app):
        pass
    client = await _client_row(own_database)
    assert client is not None
    assert client.secret_hash is None  # public: it proves itself with PKCE
    assert client.grant_types == ["authorization_code", "refresh_token"]
    assert sorted(client.scopes) == ["finance:read", "portfolio:read"]
    assert client.redirect_uris == ["http://127.0.0.1:8123/", "http://localhost:8123/"]


@pytest.fixture
def database_env(own_database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", own_database)
    get_settings.cache_clear()
    yield own_database
    get_settings.cache_clear()


def test_the_command_registers_the_client_and_adds_addresses(database_env: str) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["dashboard-client", "--url", "https://portfolio.example.com/"])
    assert first.exit_code == 0, first.output
    assert "client_id: dashboard" in first.output
    again = runner.invoke(
        cli,
        [
            "dashboard-client",
            "--url",
            "https://portfolio.example.com/",
            "--url",
            "https://bi.example.com/",
        ],
    )
    assert again.exit_code == 0, again.output
    assert "redirect URIs: https://portfolio.example.com/ https://bi.example.com/" in again.output

    refused = runner.invoke(cli, ["dashboard-client", "--url", "http://portfolio.example.com/"])
    assert refused.exit_code == 1
    assert refused.output.strip() == (
        "redirect_uris: Redirect URI 'http://portfolio.example.com/' must use https "
        "(http only for localhost)."
    )
    # Refused: nothing changed, nothing recorded; the two changes before are audited.
    client, history = asyncio.run(_client_and_history(database_env))
    assert client is not None
    assert client.redirect_uris == ["https://portfolio.example.com/", "https://bi.example.com/"]
    assert client.version == 2
    assert history == ["CREATE", "UPDATE"]


# ---- in a browser ------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[webdriver.Chrome]:
    """One Chromium for the module's browser tests (each start costs seconds)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip(
            "the dashboard's browser tests need Debian's Chromium: "
            "apt-get install chromium chromium-driver"
        )
    with _chromium() as browser:
        yield browser


@contextmanager
def _browser(chromium: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The module's Chromium as a new one would be: no page, no cookie (cookies ignore
    ports: the last test's server had a sign-in session on 127.0.0.1 too), nothing left
    in its logs (a test reads only what its page logged and requested)."""
    chromium.get("about:blank")
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Network.clearBrowserCache", {})
    chromium.set_window_size(1400, 1000)
    chromium.get_log("browser")
    chromium.get_log("performance")
    try:
        yield chromium
    finally:
        # Left before its server stops: the page's timers and live connection end.
        chromium.get("about:blank")


async def _arrange(url: str, server: InProcessServer) -> dict[str, Any]:
    """The dashboard's client for the server's address, an admin and a viewer with
    passwords (as `portfolio create-admin` makes them), and an ingest service's token."""
    engine = create_async_engine(url)
    async with AsyncSession(engine) as session, session.begin():
        await identity.dashboard_client(session, identity.OPERATOR, [f"{server.url}/"])
        people = {}
        for role in ("admin", "viewer"):
            user = await identity.create_user(
                session,
                identity.OPERATOR,
                email=f"{role}@example.com",
                display_name=role.title(),
                password=PASSWORD,
                roles=[role],
            )
            people[role] = user.email
        pipeline, secret = await identity.create_client(
            session,
            identity.OPERATOR,
            name="KPI pipeline",
            grant_types=["client_credentials"],
            scopes=["kpis:ingest", "portfolio:read"],
            redirect_uris=[],
            confidential=True,
        )
        products = await session.scalar(select(func.count()).select_from(models.Product))
        pipeline_id = pipeline.client_id
    await engine.dispose()
    async with httpx.AsyncClient(base_url=server.url) as http:
        token = (
            await http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(pipeline_id, str(secret)),
            )
        ).json()["access_token"]
    return {"people": people, "products": products, "ingest": token}


def _sign_in(
    browser: webdriver.Chrome, server: InProcessServer, email: str, view: str | None = ""
) -> WebDriverWait:
    """Through the page's button and the authorization server's own form, from the page
    at ``view`` (None: where the browser is)."""
    if view is not None:
        browser.get(f"{server.url}/{view}")
    here = browser.current_url
    wait = WebDriverWait(browser, 30, poll_frequency=POLL_SECONDS)
    wait.until(expected_conditions.element_to_be_clickable((By.ID, "sign-in"))).click()
    wait.until(expected_conditions.url_contains("/oauth/authorize"))
    browser.find_element(By.NAME, "email").send_keys(email)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.XPATH, "//button[@value='allow']").click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, "sign-out")))
    # Back where sign-in started; the code left the address bar once traded for tokens.
    assert browser.current_url == here
    return wait


def _text_in(css: str, text: str) -> Callable[[webdriver.Chrome], str | Literal[False]]:
    def shown(browser: webdriver.Chrome) -> str | Literal[False]:
        try:
            found = browser.find_element(By.CSS_SELECTOR, css).text
        except (NoSuchElementException, StaleElementReferenceException):
            return False  # not there yet, or replaced while read
        return found if text in found else False

    return shown


def _screenshot(browser: webdriver.Chrome, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    assert browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    print(f"screenshot: {path}")
    return path


async def _record(
    server: InProcessServer, token: str, kpi: str, value: float, external_id: str
) -> None:
    """One measurement, now, through the API, as a monitoring pipeline sends it."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        recorded = await http.post(
            "/graphql",
            json={
                "query": "mutation($input: RecordKpiMeasurementsInput!) { "
                "recordKpiMeasurements(input: $input) { inserted userErrors { code } } }",
                "variables": {
                    "input": {
                        "measurements": [
                            {
                                "kpiKey": kpi,
                                "observedAt": datetime.now(UTC).isoformat(),
                                "value": value,
                                "source": "dashboard-test",
                                "externalId": external_id,
                            }
                        ]
                    }
                },
            },
            headers={"Authorization": f"Bearer {token}"},
        )
    assert recorded.json()["data"]["recordKpiMeasurements"] == {"inserted": 1, "userErrors": []}


def _no_script_errors(browser: webdriver.Chrome) -> None:
    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []


async def _refresh_tokens_of(url: str, email: str) -> list[RefreshToken]:
    engine = create_async_engine(url)
    try:
        async with AsyncSession(engine) as session:
            rows = await session.scalars(
                select(RefreshToken)
                .join(User, User.id == RefreshToken.user_id)
                .where(User.email == email)
            )
            return list(rows)
    finally:
        await engine.dispose()


async def test_sign_in_see_the_portfolio_open_a_product_and_watch_it_change(
    own_database: str, tmp_path: Path, chromium: webdriver.Chrome
) -> None:
    with served_in_process(own_database) as server, _browser(chromium) as browser:
        arranged = await _arrange(own_database, server)
        admin = arranged["people"]["admin"]
        wait = _sign_in(browser, server, admin)

        # The portfolio: a card per product, its four KPIs with status in words and a
        # sparkline each, and its open blockers.
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == arranged["products"])
        cards = browser.find_elements(By.CSS_SELECTOR, ".card")
        assert len(cards) == arranged["products"] == 10
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card .kpi")) == 40
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card .kpi svg[role=img]")) == 40
        statuses = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".card .kpi .status")}
        assert (
            statuses <= {"On target", "Off target", "Warning", "Critical", "No data"}
            and "Critical" in statuses
        )
        payments = browser.find_element(By.CSS_SELECTOR, ".card[data-product='PAY']")
        assert "Payments Platform" in payments.text and "open blocker" in payments.text
        assert [e.text for e in payments.find_elements(By.CSS_SELECTOR, ".kpi .name")] == [
            "System uptime",
            "Feature adoption rate",
            "Page load time",
            "Bug and incident rate",
        ]
        assert "Access: finance:read, portfolio:read" in browser.find_element(By.ID, "scopes").text
        _screenshot(browser, tmp_path, "portfolio")

        # A product: its KPI table, its roadmap with costs, its constraints.
        # By keyboard: the card's link, then Enter.
        payments.find_element(By.LINK_TEXT, "Payments Platform").send_keys(Keys.ENTER)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".kpi-table tbody tr")) == 4)
        assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".kpi-table tbody th")] == [
            "System uptime\nPAY-UPTIME",
            "Feature adoption rate\nPAY-ADOPTION",
            "Page load time\nPAY-LOAD-TIME",
            "Bug and incident rate\nPAY-INCIDENTS",
        ]
        headers = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".kpi-table thead th")]
        assert "Why it matters to IT" in headers and "Why it matters to product" in headers
        assert browser.find_elements(By.CSS_SELECTOR, "table.roadmap tbody tr")
        assert "Estimated cost" in [
            e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.roadmap thead th")
        ]
        assert browser.find_elements(By.CSS_SELECTOR, ".severity-group")
        # The score's explanation, on keyboard focus.
        score = browser.find_element(By.CSS_SELECTOR, "table.roadmap .score")
        browser.execute_script("arguments[0].focus();", score)
        tip = browser.find_element(By.ID, str(score.get_attribute("aria-describedby")))
        assert tip.is_displayed() and "×" in tip.text
        uptime = browser.find_element(By.CSS_SELECTOR, "tr[data-kpi='PAY-UPTIME']")
        assert uptime.find_element(By.CSS_SELECTOR, ".status").text != "Critical"
        assert "Stale — last measured" in uptime.text  # the demo's fixed date is past
        _screenshot(browser, tmp_path, "product")

        # A measurement recorded through the API reaches the page without a reload.
        browser.execute_script("window.notReloaded = true;")
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "live-state"), "Live"))
        await _record(server, arranged["ingest"], "PAY-UPTIME", 91.5, "outage-1")
        row = wait.until(_text_in("tr[data-kpi='PAY-UPTIME']", "91.5 %"))
        assert "Fresh — last measured just now" in row
        status = browser.find_element(By.CSS_SELECTOR, "tr[data-kpi='PAY-UPTIME'] .status")
        assert status.text == "Critical"
        assert browser.execute_script("return window.notReloaded;") is True
        assert (
            browser.find_element(By.ID, "announcer").get_attribute("textContent")
            == "System uptime — Payments Platform: 91.5 %, now Critical."
        )
        browser.execute_script(
            "arguments[0].scrollIntoView();", browser.find_element(By.TAG_NAME, "h1")
        )
        _screenshot(browser, tmp_path, "product-after-measurement")

        # Back to the portfolio: the card shows the new value too, and follows the next.
        browser.find_element(By.LINK_TEXT, "← All products").click()
        wait.until(_text_in(".card[data-product='PAY'] [data-kpi='PAY-UPTIME']", "91.5 %"))
        browser.execute_script("window.notReloaded = true;")
        await _record(server, arranged["ingest"], "PAY-UPTIME", 99.99, "recovered-1")
        card = wait.until(_text_in(".card[data-product='PAY'] [data-kpi='PAY-UPTIME']", "99.99 %"))
        assert "System uptime" in card and "Critical" not in card
        assert browser.execute_script("return window.notReloaded;") is True
        _no_script_errors(browser)

        # Sign-out revokes the session's refresh tokens.
        assert [token.revoked_at for token in await _refresh_tokens_of(own_database, admin)] == [
            None
        ]
        browser.find_element(By.ID, "sign-out").click()
        wait.until(_text_in("#signin-message", "You are signed out."))
        [token] = await _refresh_tokens_of(own_database, admin)
        assert token.revoked_at is not None
        assert browser.find_elements(By.CSS_SELECTOR, ".card") == []
        assert browser.find_element(By.ID, "live-state").text == "Not connected"
        _screenshot(browser, tmp_path, "signed-out")

        # Signed in again on the same page: live again.
        _sign_in(browser, server, admin, view=None)
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == 10)
        wait.until(expected_conditions.text_to_be_present_in_element((By.ID, "live-state"), "Live"))
        await _record(server, arranged["ingest"], "PAY-UPTIME", 98.25, "dip-1")
        wait.until(_text_in(".card[data-product='PAY'] [data-kpi='PAY-UPTIME']", "98.25 %"))
        _no_script_errors(browser)


async def _measured_an_hour_ago_but_pay_adoption(url: str, stale_days: int) -> None:
    """Every KPI's series moved to end an hour ago (fresh: they expect one a day), then
    PAY-ADOPTION's moved ``stale_days`` further back (stale)."""
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            sql(
                "UPDATE kpi_measurements SET observed_at = observed_at"
                " + (now() - interval '1 hour' - (SELECT max(observed_at) FROM kpi_measurements))"
            )
        )
        await connection.execute(
            sql(
                "UPDATE kpi_measurements m SET observed_at = observed_at - make_interval(days => :days)"
                " FROM kpis k WHERE k.id = m.kpi_id AND k.key = 'PAY-ADOPTION'"
            ),
            {"days": stale_days},
        )
    await engine.dispose()


def _kpi_rows(browser: webdriver.Chrome) -> list[str]:
    return [
        str(row.get_attribute("data-kpi"))
        for row in browser.find_elements(By.CSS_SELECTOR, ".kpi-table tbody tr")
    ]


async def test_freshness_reads_in_words_and_importance_sorts_the_kpis(
    own_database: str, tmp_path: Path, chromium: webdriver.Chrome
) -> None:
    """A stale KPI says so (and since when) on its card and in its product's table;
    the IT and product importance levels stand beside their prose, and the table sorts
    by them from the keyboard, most important first, then least."""
    await _measured_an_hour_ago_but_pay_adoption(own_database, stale_days=3)
    with served_in_process(own_database) as server, _browser(chromium) as browser:
        arranged = await _arrange(own_database, server)
        wait = _sign_in(browser, server, arranged["people"]["admin"])
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == arranged["products"])

        def freshness(where: str) -> WebElement:
            return browser.find_element(By.CSS_SELECTOR, f"{where} .freshness")

        card = ".card[data-product='PAY']"
        stale = freshness(f"{card} [data-kpi='PAY-ADOPTION']")
        assert stale.text == "Stale — last measured 3 days ago"
        assert stale.get_attribute("data-freshness") == "STALE"
        fresh = freshness(f"{card} [data-kpi='PAY-UPTIME']")
        assert fresh.text == "Fresh — last measured 1 hour ago"
        # The one stale KPI of the portfolio is the only one that reads so.
        assert [
            e.text for e in browser.find_elements(By.CSS_SELECTOR, ".card .freshness.stale")
        ] == ["Stale — last measured 3 days ago"]
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card .freshness")) == 40
        browser.execute_script(
            "arguments[0].scrollIntoView();", browser.find_element(By.CSS_SELECTOR, card)
        )
        _screenshot(browser, tmp_path, "portfolio-freshness")

        browser.get(f"{server.url}/#/product/PAY")
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".kpi-table tbody tr")) == 4)
        assert freshness("tr[data-kpi='PAY-ADOPTION']").text == "Stale — last measured 3 days ago"
        assert freshness("tr[data-kpi='PAY-UPTIME']").text == "Fresh — last measured 1 hour ago"
        headers = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".kpi-table thead th")]
        assert headers[5:] == [
            "Importance to IT",
            "Why it matters to IT",
            "Importance to product",
            "Why it matters to product",
        ]
        usual = ["PAY-UPTIME", "PAY-ADOPTION", "PAY-LOAD-TIME", "PAY-INCIDENTS"]
        assert _kpi_rows(browser) == usual
        assert [
            e.text for e in browser.find_elements(By.CSS_SELECTOR, "td[data-importance='it']")
        ] == ["Critical", "Indirect", "High", "High"]
        assert [
            e.text for e in browser.find_elements(By.CSS_SELECTOR, "td[data-importance='product']")
        ] == ["Critical", "Critical", "High", "High"]
        assert browser.find_elements(By.CSS_SELECTOR, ".kpi-table th[aria-sort]") == []

        # By keyboard: Enter on the header's button sorts, most important first; again,
        # least important first. Focus stays on the button; the change is announced.
        browser.find_element(By.ID, "sort-it").send_keys(Keys.ENTER)
        wait.until(lambda b: _kpi_rows(b)[0] == "PAY-UPTIME" and _kpi_rows(b)[-1] == "PAY-ADOPTION")
        assert _kpi_rows(browser) == [
            "PAY-UPTIME",
            "PAY-LOAD-TIME",
            "PAY-INCIDENTS",
            "PAY-ADOPTION",
        ]
        [sorted_by] = browser.find_elements(By.CSS_SELECTOR, ".kpi-table th[aria-sort]")
        assert sorted_by.get_attribute("aria-sort") == "descending"
        assert sorted_by.find_element(By.TAG_NAME, "button").get_attribute("id") == "sort-it"
        assert browser.switch_to.active_element.get_attribute("id") == "sort-it"
        assert (
            browser.find_element(By.ID, "announcer").get_attribute("textContent")
            == "KPIs sorted by importance to IT, most important first."
        )
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        wait.until(lambda b: _kpi_rows(b)[0] == "PAY-ADOPTION")
        assert _kpi_rows(browser) == [
            "PAY-ADOPTION",
            "PAY-LOAD-TIME",
            "PAY-INCIDENTS",
            "PAY-UPTIME",
        ]
        [sorted_by] = browser.find_elements(By.CSS_SELECTOR, ".kpi-table th[aria-sort]")
        assert sorted_by.get_attribute("aria-sort") == "ascending"
        _screenshot(browser, tmp_path, "product-sorted-by-it-importance")

        browser.find_element(By.ID, "sort-product").send_keys(Keys.ENTER)
        wait.until(lambda b: _kpi_rows(b) == usual)  # product: Critical, Critical, High, High
        [sorted_by] = browser.find_elements(By.CSS_SELECTOR, ".kpi-table th[aria-sort]")
        assert sorted_by.find_element(By.TAG_NAME, "button").get_attribute("id") == "sort-product"
        _no_script_errors(browser)


async def _disable(url: str, email: str) -> None:
    engine = create_async_engine(url)
    async with AsyncSession(engine) as session, session.begin():
        user_id = await session.scalar(select(User.id).where(User.email == email))
        assert user_id is not None
        await identity.set_user_active(session, identity.OPERATOR, user_id, False)
    await engine.dispose()


def _token_requests(browser: webdriver.Chrome, server: InProcessServer, seen: list[str]) -> int:
    """How many times the page has called the token endpoint so far (the DevTools log
    is drained by each read, so what was read is kept in ``seen``)."""
    seen.extend(url for url in _requested_urls(browser) if url == f"{server.url}/oauth/token")
    return len(seen)


async def test_a_viewer_without_finance_read_sees_no_cost_column(
    own_database: str, tmp_path: Path, chromium: webdriver.Chrome
) -> None:
    """Also: a reload forgets the tokens, and the access token is renewed before it
    expires with a rotated refresh token (tokens live 60 s here: renewed after 5)."""
    with (
        served_in_process(own_database, PORTFOLIO_ACCESS_TOKEN_TTL_SECONDS="60") as server,
        _browser(chromium) as browser,
    ):
        arranged = await _arrange(own_database, server)
        viewer = arranged["people"]["viewer"]
        wait = _sign_in(browser, server, viewer)
        assert browser.find_element(By.ID, "scopes").text == "Access: portfolio:read"
        browser.get(f"{server.url}/#/product/CHK")
        browser.refresh()  # tokens were in memory only: a reload asks to sign in again
        wait.until(expected_conditions.element_to_be_clickable((By.ID, "sign-in")))
        assert browser.find_elements(By.ID, "sign-out") == []
        _requested_urls(browser)  # what came before this sign-in
        wait = _sign_in(browser, server, viewer, view=None)
        assert browser.current_url == f"{server.url}/#/product/CHK"
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "table.roadmap tbody tr")) > 0)
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Checkout")
        columns = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.roadmap thead th")}
        assert "Estimated cost" not in columns and "Blocked" in columns
        assert browser.find_elements(By.CSS_SELECTOR, "table.roadmap td.cost") == []
        assert (
            "Costs are hidden: your access does not include finance:read."
            in browser.find_element(By.ID, "main").text
        )
        # Blocked initiatives name what blocks them.
        blocked = browser.find_elements(By.CSS_SELECTOR, "table.roadmap .blocked")
        assert blocked and all(e.text.startswith("Blocked by ") for e in blocked)
        assert browser.find_element(By.ID, "alerts").text == ""
        browser.execute_script("arguments[0].scrollIntoView();", blocked[0])
        _screenshot(browser, tmp_path, "viewer-product")

        # The code's exchange, then the renewal before the token expires.
        seen: list[str] = []
        WebDriverWait(browser, 60, poll_frequency=POLL_SECONDS).until(
            lambda b: _token_requests(b, server, seen) >= 2
        )
        # Each sign-in is a family of refresh tokens, each used once: in every family
        # all but the newest were spent (rotated), none revoked; this one renewed.
        tokens = await _refresh_tokens_of(own_database, viewer)
        families: dict[str, list[RefreshToken]] = {}
        for token in tokens:
            families.setdefault(token.family_id, []).append(token)
        assert len(families) == 2
        for family in families.values():
            assert [t.rotated_at is None for t in family].count(True) == 1
            assert all(t.revoked_at is None for t in family)
        assert max(len(family) for family in families.values()) >= 2
        # The page goes on with the new access token.
        browser.find_element(By.LINK_TEXT, "← All products").click()
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == arranged["products"])
        assert browser.find_element(By.ID, "alerts").text == ""

        # A status the page does not know yet (the API may add some) reads as words, in
        # the neutral style.
        badge = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "import('./dashboard/views.js').then((views) => {"
            "  const shown = views.statusBadge('BELOW_TARGET'); done([shown.textContent, shown.className]);"
            "});"
        )
        assert badge == ["Below target", "status below-target"]
        _no_script_errors(browser)

        # The account disabled: the next renewal is refused and the page says so.
        await _disable(own_database, viewer)
        message = wait.until(_text_in("#signin-message", "Please sign in again."))
        assert message == "Your session has ended. Please sign in again."
        assert browser.find_elements(By.CSS_SELECTOR, ".card") == []
        assert browser.find_element(By.ID, "session").text == ""
        _screenshot(browser, tmp_path, "session-ended")


async def test_a_user_without_access_is_told_why(
    own_database: str, tmp_path: Path, chromium: webdriver.Chrome
) -> None:
    """Signed in, but no role gives portfolio:read: the page says what is missing."""
    with served_in_process(own_database) as server, _browser(chromium) as browser:
        await _arrange(own_database, server)
        engine = create_async_engine(own_database)
        async with AsyncSession(engine) as session, session.begin():
            await identity.create_user(
                session,
                identity.OPERATOR,
                email="newcomer@example.com",
                display_name="Newcomer",
                password=PASSWORD,
                roles=[],
            )
        await engine.dispose()
        wait = _sign_in(browser, server, "newcomer@example.com")
        alert = wait.until(_text_in("#alerts", "portfolio:read"))
        assert alert == (
            "Your account does not give access to the portfolio: it needs portfolio:read "
            "(the viewer role has it). Ask an administrator."
        )
        assert browser.find_element(By.ID, "scopes").text == "Access: none"
        assert browser.find_elements(By.CSS_SELECTOR, ".card") == []
        # Nothing was asked that would be refused (a view costs hundreds of points): only
        # the budget was read.
        budget = wait.until(_text_in("#budget", "points left"))
        left = re.fullmatch(r"Rate limit: (\d+) of 50000 points left", budget)
        assert left is not None and 50000 - int(left.group(1)) <= 2
        _screenshot(browser, tmp_path, "no-access")


@pytest.mark.parametrize(
    ("seconds_before_the_hour", "wait"),
    # The budget's window ends on the hour; Retry-After is the seconds left, plus one
    # (``domain.ratelimit.Budget``), and the page tells under two minutes in seconds
    # and more in whole minutes, rounded up (``duration`` in dashboard/static/api.js).
    [(59, "60 s"), (1800, "31 min")],
)
async def test_a_spent_budget_is_waited_out_not_retried(
    own_database: str,
    tmp_path: Path,
    chromium: webdriver.Chrome,
    seconds_before_the_hour: int,
    wait: str,
) -> None:
    """With 1,500 points an hour, the portfolio (about 940) fits once and a product does
    not: the API refuses it (429, Retry-After) and the page says when to come back, and
    sends nothing more until then. The budgets' clock stands still, at a time the test
    chooses before the end of the current hour."""
    hour_ends = (int(time.time()) // 3600 + 1) * 3600
    instant = float(hour_ends - seconds_before_the_hour)
    with (
        served_in_process(
            own_database, rate_limit_clock=lambda: instant, PORTFOLIO_RATE_LIMIT_POINTS="1500"
        ) as server,
        _browser(chromium) as browser,
    ):
        arranged = await _arrange(own_database, server)
        wait_for = _sign_in(browser, server, arranged["people"]["admin"])
        wait_for.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".card")) == 10)
        browser.find_element(By.LINK_TEXT, "Checkout").click()
        alert = wait_for.until(_text_in("#alerts", "rate limit"))
        assert alert == f"Could not load the page: The rate limit is spent; try again in {wait}."
        _screenshot(browser, tmp_path, "rate-limited")
        _requested_urls(browser)  # what was sent so far
        browser.find_element(By.XPATH, "//button[normalize-space()='Try again']").click()
        again = wait_for.until(_text_in("#alerts", "rate limit"))
        assert again.startswith("Could not load the page: The rate limit is spent")
        assert [url for url in _requested_urls(browser) if url.endswith("/graphql")] == []

        # The pace once more than half the budget is gone: what is left, spread over
        # what is left of the window.
        paced = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "import('./dashboard/api.js').then((api) => {"
            "  const now = Date.now();"
            "  Object.assign(api.budget, {limit: 1000, remaining: 100, resetAt: now + 100000,"
            "    blockedUntil: 0});"
            "  done([api.waitBeforeSpending(10), api.waitBeforeSpending(200)]);"
            "});"
        )
        # 10 of the 100 points left: a tenth of the 100 s left; 200: not before the reset.
        assert 9_000 < paced[0] <= 10_000 and 99_000 < paced[1] <= 100_000
