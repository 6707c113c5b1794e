"""The server-rendered pages of the authorization endpoint, from ``templates/``.

Every value put into a page is escaped here; the templates hold only markup."""

from __future__ import annotations

import html
from importlib import resources
from string import Template

from starlette.responses import HTMLResponse

from auth.oauth.errors import NO_STORE


def _template(name: str) -> Template:
    text = resources.files("auth.oauth").joinpath("templates", name).read_text("utf-8")
    return Template(text.removesuffix("\n"))


_PAGE = _template("page.html")
_SIGN_IN = _template("sign_in.html")


def page(title: str, body: str, status: int) -> HTMLResponse:
    """A page titled ``title`` around ``body`` (markup, already escaped)."""
    return HTMLResponse(
        _PAGE.substitute(title=html.escape(title), body=body),
        status_code=status,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'self'",
            "X-Frame-Options": "DENY",
            **NO_STORE,
        },
    )


def error_page(message: str, status: int = 400) -> HTMLResponse:
    return page("Authorization error", f"<p>{html.escape(message)}</p>", status)


def sign_in_page(
    client: str, scopes: list[str], csrf: str, message: str, status: int
) -> HTMLResponse:
    listed = "".join(f"<li>{html.escape(scope)}</li>" for scope in scopes)
    body = _SIGN_IN.substitute(
        client=html.escape(client),
        scopes=listed or "<li>(none)</li>",
        notice=f'<p class="error">{html.escape(message)}</p>' if message else "",
        csrf=html.escape(csrf),
    )
    return page("Sign in", body, status)
