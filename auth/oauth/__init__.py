"""The built-in OAuth 2.1 authorization server, as Starlette routes (async all the way).

Grants: client credentials (services), authorization code with PKCE S256 (frontends,
through a server-rendered sign-in and consent page), refresh tokens rotated at every
use with reuse detection (a reused token revokes its whole family). One module per
endpoint:

- ``token.py``: the token endpoint and its three grants;
- ``authorize.py``: the sign-in and consent page (``templates/``);
- ``revoke.py``: revocation (RFC 7009); ``introspect.py``: introspection (RFC 7662);
- ``discovery.py``: metadata (RFC 8414, and the OpenID discovery document) and JWKS;
- ``clients.py``: client authentication and redirect URI rules;
- ``throttle.py``: failed sign-ins and client authentications, counted and paused;
- ``server.py``: the routes.
"""

from auth.oauth.server import AuthorizationServer

__all__ = ["AuthorizationServer"]
