"""Users, roles, OAuth clients and the caller (`viewer`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from auth.scopes import Scope
from domain import models
from schema.permissions import guarded
from schema.types.node import CREATED_AT, UPDATED_AT, VERSION, Node, global_id, of_model


@strawberry.type(description="A named set of scopes, granted to users.")
class Role(Node):
    id: strawberry.ID = global_id("Role")
    is_type_of = of_model(models.Role)

    name: str = strawberry.field(description="Unique name, e.g. `product-manager`.")
    description: str = strawberry.field(description="What the role is for.")
    scopes: list[str] = strawberry.field(description="The scopes it grants.")
    version: int = strawberry.field(description=VERSION)


@strawberry.type(description="A person who signs in through the authorization server.")
class User(Node):
    id: strawberry.ID = global_id("User")
    is_type_of = of_model(models.User)

    email: str = strawberry.field(description="Sign-in e-mail, unique.")
    display_name: str = strawberry.field(description="Name shown to others.")
    is_active: bool = strawberry.field(
        description="False once disabled: their tokens stop working at the next request."
    )
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)
    updated_at: datetime = strawberry.field(description=UPDATED_AT)

    @strawberry.field(**guarded("Roles granted to the user, by name.", Scope.ADMIN_USERS))
    async def roles(
        self, root: strawberry.Parent[models.User], info: strawberry.Info
    ) -> list[Role] | None:
        roles: list[Role] = await info.context.user_roles().load(root.id)
        return roles


@strawberry.type(description="An application allowed to ask for tokens.")
class OAuthClient(Node):
    id: strawberry.ID = global_id("OAuthClient")
    is_type_of = of_model(models.OAuthClient)

    client_id: str = strawberry.field(description="The public identifier used in OAuth requests.")
    name: str = strawberry.field(description="Display name, shown on the consent page.")
    grant_types: list[str] = strawberry.field(description="Grants it may use.")
    scopes: list[str] = strawberry.field(description="The most it may ask for.")
    redirect_uris: list[str] = strawberry.field(description="Where codes may be sent.")
    is_active: bool = strawberry.field(
        description="False once disabled: its tokens stop working at the next request."
    )
    version: int = strawberry.field(description=VERSION)
    created_at: datetime = strawberry.field(description=CREATED_AT)

    @strawberry.field(description="True when it authenticates with a secret.")
    def is_confidential(self) -> bool:
        return self.secret_hash is not None  # type: ignore[attr-defined]


@strawberry.type(description="Who is calling, and what they may do.")
class Viewer:
    user: User | None = strawberry.field(description="The signed-in user, if any.")
    client: OAuthClient | None = strawberry.field(description="The OAuth client, if any.")
    scopes: list[str] = strawberry.field(
        description="Effective scopes: the token's scopes that the caller's roles or client allow."
    )
    authenticated: bool = strawberry.field(description="False for anonymous callers.")


async def viewer_of(info: strawberry.Info) -> Viewer:
    principal = info.context.principal

    async def load(session: Any) -> tuple[Any, Any]:
        user = await session.get(models.User, principal.user_id) if principal.user_id else None
        client = (
            await session.get(models.OAuthClient, principal.client_pk)
            if principal.client_pk
            else None
        )
        return user, client

    user, client = await info.context.run(load)
    return Viewer(
        user=user,
        client=client,
        scopes=sorted(principal.scopes),
        authenticated=principal.authenticated,
    )
