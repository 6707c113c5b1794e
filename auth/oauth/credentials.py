"""The client credentials a request presents (HTTP Basic or form fields)."""

from __future__ import annotations

import base64
from typing import Any

from starlette.requests import Request

from auth.oauth.errors import OAuthError

# A client id longer than any registered one is refused before it reaches the database.
CLIENT_ID_MAX_LENGTH = 64


def credentials(request: Request, form: Any) -> tuple[str, Any, bool]:
    """(client id, secret, whether they came as HTTP Basic) of a client authentication."""
    client_id, secret, basic = form.get("client_id"), form.get("client_secret"), False
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        basic = True
        try:
            decoded = base64.b64decode(header[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401, basic) from None
    return str(client_id or ""), secret, basic
