"""GraphiQL works without internet access: in development the page loads only the
app's own copies of its files (schema/graphiql/static), which are the vendored bytes
its integrity attributes name; production has neither the page nor the files."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tomllib
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal
from urllib.parse import urlencode

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.app import assemble_app
from schema import graphiql
from tests.conftest import make_client, settings_for
from tests.fixtures.server import served_in_process

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "schema" / "graphiql" / "static"
MANIFEST = json.loads((STATIC / "manifest.json").read_text())["files"]
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
# How often a wait looks at the page again: selenium's default (0.5 s) made each of the
# browser tests' waits last up to half a second after the page was ready.
POLL_SECONDS = 0.05


@contextmanager
def _chromium() -> Iterator[webdriver.Chrome]:
    """Debian's headless Chromium and chromedriver (CI installs them), cut off from
    every host but 127.0.0.1, recording what it requests."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and chromedriver, "needs Debian's chromium and chromium-driver (README)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--no-proxy-server",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = ChromeService(executable_path=chromedriver)
    browser = webdriver.Chrome(options=options, service=service)
    try:
        yield browser
    finally:
        browser.quit()


def _result_containing(text: str) -> Callable[[webdriver.Chrome], str | Literal[False]]:
    """The result pane's text once it contains ``text``."""

    def shown(browser: webdriver.Chrome) -> str | Literal[False]:
        shown_text = browser.execute_script(
            "const pane = document.querySelector('.result-window .CodeMirror');"
            "return pane ? pane.CodeMirror.getValue() : '';"
        )
        return shown_text if text in shown_text else False

    return shown


def _requested_urls(browser: webdriver.Chrome) -> list[str]:
    """Every URL the page asked for, from the DevTools log."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


class Page(HTMLParser):
    """What a browser would fetch from the page: its tags' src and href, and the text
    of its inline scripts and styles."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._in: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in {"script", "style"} else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None and data.strip():
            self.inline.append(data)

    def urls(self) -> list[str]:
        return [
            value
            for _, attrs in self.tags
            for name, value in attrs.items()
            if name in {"src", "href"} and value is not None
        ]

    def scripts(self) -> list[dict[str, str | None]]:
        return [attrs for tag, attrs in self.tags if tag == "script" and "src" in attrs]

    def stylesheets(self) -> list[dict[str, str | None]]:
        return [
            attrs for tag, attrs in self.tags if tag == "link" and attrs.get("rel") == "stylesheet"
        ]


async def _page(client: httpx.AsyncClient, path: str = "/graphql") -> tuple[httpx.Response, Page]:
    response = await client.get(path, headers=BROWSER)
    return response, Page(response.text)


async def test_development_answers_a_browser_with_the_page(client: httpx.AsyncClient) -> None:
    response, page = await _page(client)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert ("div", {"id": "graphiql"}) in page.tags
    # What the page does today: the explorer plugin and a usable headers tab, for
    # `Authorization: Bearer ...`.
    script = "\n".join(page.inline)
    assert "GraphiQLPluginExplorer.explorerPlugin()" in script
    assert "isHeadersEditorEnabled: true" in script


async def test_the_page_names_no_other_host(client: httpx.AsyncClient) -> None:
    _, page = await _page(client)
    urls = page.urls()
    assert len(urls) == len(graphiql.ASSETS) + 1  # the files and the (inline) icon
    for url in urls:
        assert url.startswith(("/", "data:")), url
        assert not url.startswith("//"), url  # protocol-relative: another host
    for text in page.inline:
        assert re.findall(r"https?://|wss?://", text) == []
        assert re.findall(r"[\"'`(]\s*//", text) == []  # a protocol-relative literal
    # The fetcher talks to the address the page came from (subscriptions to the same
    # address over WebSocket), and to nothing else.
    inline = "\n".join(page.inline)
    assert "url: endpoint," in inline
    assert 'subscriptionUrl: endpoint.replace(/^http/, "ws"),' in inline
    assert inline.count("url:") + inline.count("Url:") == 2


async def test_every_file_the_page_loads_is_the_vendored_one(client: httpx.AsyncClient) -> None:
    _, page = await _page(client)
    loaded = [("text/javascript", attrs) for attrs in page.scripts()]
    loaded += [("text/css", attrs) for attrs in page.stylesheets()]
    assert len(loaded) == len(graphiql.ASSETS) == 6
    for media_type, attrs in loaded:
        url = attrs.get("src") or attrs["href"]
        assert url is not None and url.startswith(graphiql.PREFIX + "/")
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["x-content-type-options"] == "nosniff"
        vendored = STATIC / url.removeprefix(graphiql.PREFIX + "/")
        assert response.content == vendored.read_bytes()
        # What the browser checks before it runs the file.
        digest = b64encode(hashlib.sha384(response.content).digest()).decode()
        assert attrs["integrity"] == f"sha384-{digest}"
    # Each script needs the ones before it: React, ReactDOM, GraphiQL, then the plugin.
    assert [Path(str(attrs["src"])).name for attrs in page.scripts()] == [
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "index.umd.js",
    ]


async def test_only_the_pages_files_are_served(client: httpx.AsyncClient) -> None:
    for path in (
        "react-18.2.0/LICENSE",
        "manifest.json",
        "README.md",
        "../page.html",
        "..%2Fpage.html",
        "react-18.2.0/react.development.js",
    ):
        response = await client.get(f"{graphiql.PREFIX}/{path}")
        assert response.status_code == 404, path
        assert response.text == "Not Found"


async def test_the_pages_example_query_runs(client: httpx.AsyncClient) -> None:
    _, page = await _page(client)
    literal = re.search(r'defaultQuery: ("(?:[^"\\]|\\.)*")', "\n".join(page.inline))
    assert literal is not None
    answer = await client.post("/graphql", json={"query": json.loads(literal.group(1))})
    assert "errors" not in answer.json()
    assert answer.json()["data"]["products"]["nodes"]


async def test_files_under_a_path_prefix_are_named_with_it(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Behind a proxy that mounts the app under /api (ASGI root_path)."""
    app = assemble_app(settings_for(), engine, sessions)
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response, page = await _page(client, "/api/graphql")
        assert response.status_code == 200
        urls = [url for url in page.urls() if not url.startswith("data:")]
        assert len(urls) == len(graphiql.ASSETS)
        for url in urls:
            assert url.startswith("/api" + graphiql.PREFIX + "/")
            assert (await client.get(url)).status_code == 200


async def test_production_has_neither_the_page_nor_its_files(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with make_client(engine, sessions, environment="production") as production:
        page = await production.get("/graphql", headers=BROWSER)
        assert page.status_code == 404
        assert page.json()["errors"][0]["message"] == "Not Found"
        for asset in graphiql.ASSETS:
            response = await production.get(f"{graphiql.PREFIX}/{asset.path}")
            assert response.status_code == 404
            assert response.text == "Not Found"


def test_vendored_files_match_their_manifest() -> None:
    """The files are the ones vendor.py took from npm: same size and SHA-256, each
    package's licence beside them, nothing else, and the README's table says so."""
    listed = {entry["path"] for entry in MANIFEST}
    present = {str(path.relative_to(STATIC)) for path in STATIC.rglob("*") if path.is_file()} - {
        "manifest.json",
        "README.md",
    }
    assert present == listed
    readme = (STATIC / "README.md").read_text()
    for entry in MANIFEST:
        data = (STATIC / entry["path"]).read_bytes()
        assert len(data) == entry["bytes"], entry["path"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert f"`{entry['path']}`" in readme and entry["sha256"] in readme
    folders = {path.split("/")[0] for path in listed}
    assert {f"{folder}/LICENSE" for folder in folders} <= listed


def test_an_installed_package_ships_the_files() -> None:
    """pyproject's package-data names every file the page needs, so that a
    non-editable install has them too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["schema"]
    shipped = {
        str(path.relative_to(ROOT / "schema"))
        for pattern in patterns
        for path in (ROOT / "schema").glob(pattern)
        if path.is_file()
    }
    needed = {f"graphiql/static/{entry['path']}" for entry in MANIFEST}
    needed |= {"graphiql/page.html", "graphiql/static/manifest.json", "graphiql/static/README.md"}
    assert needed <= shipped


async def test_graphiql_runs_in_a_browser_without_internet(own_database: str) -> None:
    """Headless Chromium, every host but the server's unresolvable: GraphiQL renders,
    loads nothing from anywhere else, runs a query from its address (?q=), sends what
    the Headers tab holds, and shows the explorer plugin."""
    query = "{ products(first: 2) { nodes { key } } }"
    with served_in_process(own_database) as server, _chromium() as browser:
        browser.get(f"{server.url}/graphql?{urlencode({'q': query})}")
        wait = WebDriverWait(browser, 30, poll_frequency=POLL_SECONDS)
        execute = wait.until(
            expected_conditions.element_to_be_clickable((By.CLASS_NAME, "graphiql-execute-button"))
        )
        execute.click()
        result = wait.until(_result_containing('"products"'))
        assert json.loads(result)["data"]["products"]["nodes"][0]["key"]
        # No file refused (an integrity mismatch is logged so), no script error.
        assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []

        # The Headers tab's JSON goes with the request: a forged token is refused.
        browser.find_element(By.XPATH, "//button[normalize-space()='Headers']").click()
        browser.execute_script(
            "document.querySelector('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror')"
            ".CodeMirror.setValue(arguments[0]);",
            '{"Authorization": "Bearer forged"}',
        )
        execute.click()
        refused = json.loads(wait.until(_result_containing("UNAUTHENTICATED")))
        async with httpx.AsyncClient(base_url=server.url) as http:  # what the server says
            direct = await http.post(
                "/graphql", json={"query": query}, headers={"Authorization": "Bearer forged"}
            )
        assert direct.status_code == 401
        assert refused == direct.json()
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        explorer = browser.find_element(By.CSS_SELECTOR, "[aria-label='Show GraphiQL Explorer']")
        explorer.click()
        # The explorer lists the schema's root fields (read by introspection).
        wait.until(
            expected_conditions.text_to_be_present_in_element(
                (By.CLASS_NAME, "docExplorerWrap"), "initiatives"
            )
        )

        requested = _requested_urls(browser)
        assert requested and all(url.startswith((server.url + "/", "data:")) for url in requested)
        assert {url.split("?")[0] for url in requested} >= {
            f"{server.url}{graphiql.PREFIX}/{asset.path}" for asset in graphiql.ASSETS
        }
