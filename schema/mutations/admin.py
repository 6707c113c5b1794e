"""Administration: users and role grants (admin:users), OAuth clients (admin:clients)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from auth import identity
from auth.scopes import Scope
from schema.mutations.common import (
    WHAT_TO_DO,
    UserError,
    decode_reference,
    entity_id,
    given_values,
    run,
)
from schema.mutations.inputs import VERSION, given, required
from schema.mutations.payloads import ERRORS, after_change, of_a_mutation
from schema.permissions import guarded
from schema.types.identity import OAuthClient, Role, User


@strawberry.type(description=of_a_mutation("User"))
class UserPayload:
    user: User | None = strawberry.field(description=after_change("User"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description=of_a_mutation("Role"))
class RolePayload:
    role: Role | None = strawberry.field(description=after_change("Role"))
    user_errors: list[UserError] = strawberry.field(description=ERRORS)


@strawberry.type(description="Result of a mutation of an OAuth client.")
class OAuthClientPayload:
    client: OAuthClient | None = strawberry.field(description="The client after the change.")
    client_secret: str | None = strawberry.field(
        default=None,
        description="The new secret of a confidential client, shown only in this response: "
        "store it now.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why it was refused."
    )


@strawberry.input(description="Create a user.")
class CreateUserInput:
    email: str = required("Sign-in e-mail, unique (stored lower-case).")
    display_name: str = required("Name shown to others.")
    password: str | None = given("At least 12 characters; leave out for SSO-only users.", None)
    roles: list[str] = strawberry.field(
        default_factory=list, description="Names of roles to grant."
    )


@strawberry.input(description="Change a user's profile; fields left out stay as they are.")
class UpdateUserInput:
    id: strawberry.ID = required("The user.")
    expected_version: int | None = given(VERSION, None)
    email: str | None = given("Sign-in e-mail, unique.")
    display_name: str | None = given("Name shown to others.")


@strawberry.input(description="Set a user's password; their existing tokens stop working.")
class SetUserPasswordInput:
    id: strawberry.ID = required("The user.")
    password: str = required("At least 12 characters.")


@strawberry.input(description="Enable or disable an account.")
class SetActiveInput:
    id: strawberry.ID = required("The user or client.")
    active: bool = required("False disables it: its tokens fail from the next request on.")


@strawberry.input(description="A user and a role to grant or revoke.")
class RoleGrantInput:
    user_id: strawberry.ID = required("The user.")
    role: str = required("The role's name.")


@strawberry.input(description="Create a role.")
class CreateRoleInput:
    name: str = required("Unique name: lower-case letters, digits and dashes.")
    scopes: list[str] = required("The scopes it grants.")
    description: str = given("What the role is for.", "")


@strawberry.input(description="Change a role; fields left out stay as they are.")
class UpdateRoleInput:
    id: strawberry.ID = required("The role.")
    expected_version: int | None = given(VERSION, None)
    description: str | None = given("What the role is for.")
    scopes: list[str] | None = given("The scopes it grants (replaces the list).")


@strawberry.input(description="Register an OAuth client.")
class CreateOAuthClientInput:
    name: str = required("Display name, shown on the consent page.")
    grant_types: list[str] = required(
        "Any of client_credentials (services), authorization_code and refresh_token (frontends)."
    )
    scopes: list[str] = required("The most it may ask for.")
    redirect_uris: list[str] = strawberry.field(
        default_factory=list, description="Where codes may be sent (https, or http on localhost)."
    )
    confidential: bool = given(
        "True: it gets a secret (servers). False: a public client (browser, native) using PKCE.",
        True,
    )


@strawberry.input(description="Change an OAuth client; fields left out stay as they are.")
class UpdateOAuthClientInput:
    id: strawberry.ID = required("The client.")
    expected_version: int | None = given(VERSION, None)
    name: str | None = given("Display name.")
    grant_types: list[str] | None = given("Grants it may use.")
    scopes: list[str] | None = given("The most it may ask for.")
    redirect_uris: list[str] | None = given("Where codes may be sent.")


@strawberry.input(description="Give a confidential client a new secret; the old one stops working.")
class RotateOAuthClientSecretInput:
    id: strawberry.ID = required("The client.")


USERS = Scope.ADMIN_USERS
CLIENTS = Scope.ADMIN_CLIENTS


@strawberry.type(description="Administration of users, roles and OAuth clients.")
class AdminMutation:
    @strawberry.mutation(
        name="createUser",
        **guarded(
            "Create a user, optionally with roles.",
            USERS,
        ),
    )
    async def create_user(
        self, info: strawberry.Info, input: Annotated[CreateUserInput, WHAT_TO_DO]
    ) -> UserPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.create_user(
                session,
                actor,
                email=input.email,
                display_name=input.display_name,
                password=input.password,
                roles=input.roles,
            ),
        )
        return UserPayload(user=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="updateUser",
        **guarded(
            "Change a user's profile.",
            USERS,
        ),
    )
    async def update_user(
        self, info: strawberry.Info, input: Annotated[UpdateUserInput, WHAT_TO_DO]
    ) -> UserPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.update_user(
                session,
                actor,
                entity_id(input, "User"),
                input.expected_version,
                given_values(input, {}),
            ),
        )
        return UserPayload(user=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="setUserPassword",
        **guarded(
            "Set a user's password; their tokens stop working.",
            USERS,
        ),
    )
    async def set_user_password(
        self, info: strawberry.Info, input: Annotated[SetUserPasswordInput, WHAT_TO_DO]
    ) -> UserPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.set_password(
                session, actor, entity_id(input, "User"), input.password
            ),
        )
        return UserPayload(user=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="setUserActive",
        **guarded(
            "Enable or disable a user; a disabled user's tokens fail at the next request.",
            USERS,
        ),
    )
    async def set_user_active(
        self, info: strawberry.Info, input: Annotated[SetActiveInput, WHAT_TO_DO]
    ) -> UserPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.set_user_active(
                session, actor, entity_id(input, "User"), input.active
            ),
        )
        return UserPayload(user=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="grantRole",
        **guarded(
            "Grant a role to a user (no-op if held).",
            USERS,
        ),
    )
    async def grant_role(
        self, info: strawberry.Info, input: Annotated[RoleGrantInput, WHAT_TO_DO]
    ) -> UserPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.grant_role(
                session, actor, decode_reference(input.user_id, "User", "user_id"), input.role
            ),
        )
        return UserPayload(user=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="revokeRole",
        **guarded(
            "Revoke a role from a user (no-op if not held).",
            USERS,
        ),
    )
    async def revoke_role(
        self, info: strawberry.Info, input: Annotated[RoleGrantInput, WHAT_TO_DO]
    ) -> UserPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.revoke_role(
                session, actor, decode_reference(input.user_id, "User", "user_id"), input.role
            ),
        )
        return UserPayload(user=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="createRole",
        **guarded(
            "Create a role.",
            USERS,
        ),
    )
    async def create_role(
        self, info: strawberry.Info, input: Annotated[CreateRoleInput, WHAT_TO_DO]
    ) -> RolePayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.create_role(session, actor, given_values(input, {})),
        )
        return RolePayload(role=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="updateRole",
        **guarded(
            "Change a role's description or scopes.",
            USERS,
        ),
    )
    async def update_role(
        self, info: strawberry.Info, input: Annotated[UpdateRoleInput, WHAT_TO_DO]
    ) -> RolePayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.update_role(
                session,
                actor,
                entity_id(input, "Role"),
                input.expected_version,
                given_values(input, {}),
            ),
        )
        return RolePayload(role=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="createOAuthClient",
        **guarded(
            "Register an OAuth client. A confidential client's secret is in the payload, once.",
            CLIENTS,
        ),
    )
    async def create_oauth_client(
        self, info: strawberry.Info, input: Annotated[CreateOAuthClientInput, WHAT_TO_DO]
    ) -> OAuthClientPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.create_client(
                session,
                actor,
                name=input.name,
                grant_types=input.grant_types,
                scopes=input.scopes,
                redirect_uris=input.redirect_uris,
                confidential=input.confidential,
            ),
        )
        client, secret = outcome.value or (None, None)
        return OAuthClientPayload(client=client, client_secret=secret, user_errors=outcome.errors)

    @strawberry.mutation(
        name="updateOAuthClient",
        **guarded(
            "Change an OAuth client.",
            CLIENTS,
        ),
    )
    async def update_oauth_client(
        self, info: strawberry.Info, input: Annotated[UpdateOAuthClientInput, WHAT_TO_DO]
    ) -> OAuthClientPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.update_client(
                session,
                actor,
                entity_id(input, "OAuthClient"),
                input.expected_version,
                given_values(input, {}),
            ),
        )
        return OAuthClientPayload(client=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="setOAuthClientActive",
        **guarded(
            "Enable or disable an OAuth client; its tokens fail at the next request.",
            CLIENTS,
        ),
    )
    async def set_oauth_client_active(
        self, info: strawberry.Info, input: Annotated[SetActiveInput, WHAT_TO_DO]
    ) -> OAuthClientPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.set_client_active(
                session, actor, entity_id(input, "OAuthClient"), input.active
            ),
        )
        return OAuthClientPayload(client=outcome.value, user_errors=outcome.errors)

    @strawberry.mutation(
        name="rotateOAuthClientSecret",
        **guarded(
            "Give a confidential client a new secret (in the payload, once); the old one stops "
            "working.",
            CLIENTS,
        ),
    )
    async def rotate_oauth_client_secret(
        self, info: strawberry.Info, input: Annotated[RotateOAuthClientSecretInput, WHAT_TO_DO]
    ) -> OAuthClientPayload | None:
        outcome = await run(
            info,
            lambda session, actor: identity.rotate_client_secret(
                session, actor, entity_id(input, "OAuthClient")
            ),
        )
        client, secret = outcome.value or (None, None)
        return OAuthClientPayload(client=client, client_secret=secret, user_errors=outcome.errors)
