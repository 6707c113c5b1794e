"""Administration: users and role grants (admin:users), OAuth clients (admin:clients)."""

from __future__ import annotations

import strawberry

from auth.scopes import Scope
from domain.services import identity
from schema.mutations.common import UserError, decode_reference, given_values
from schema.mutations.entities import mutation_field
from schema.mutations.inputs import VERSION, given, required
from schema.mutations.payloads import entity_payload
from schema.types.identity import OAuthClient, Role, User

UserPayload = entity_payload("User", User, "user")
RolePayload = entity_payload("Role", Role, "role")


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


def _id(value: str, type_name: str) -> int:
    return decode_reference(value, type_name, "id")


USERS = Scope.ADMIN_USERS
CLIENTS = Scope.ADMIN_CLIENTS


@strawberry.type(description="Administration of users, roles and OAuth clients.")
class AdminMutation:
    create_user = mutation_field(
        CreateUserInput,
        UserPayload,
        "user",
        "Create a user, optionally with roles.",
        USERS,
        lambda s, actor, i: identity.create_user(
            s, actor, email=i.email, display_name=i.display_name, password=i.password, roles=i.roles
        ),
    )
    update_user = mutation_field(
        UpdateUserInput,
        UserPayload,
        "user",
        "Change a user's profile.",
        USERS,
        lambda s, actor, i: identity.update_user(
            s, actor, _id(i.id, "User"), i.expected_version, given_values(i, {})
        ),
    )
    set_user_password = mutation_field(
        SetUserPasswordInput,
        UserPayload,
        "user",
        "Set a user's password; their tokens stop working.",
        USERS,
        lambda s, actor, i: identity.set_password(s, actor, _id(i.id, "User"), i.password),
    )
    set_user_active = mutation_field(
        SetActiveInput,
        UserPayload,
        "user",
        "Enable or disable a user; a disabled user's tokens fail at the next request.",
        USERS,
        lambda s, actor, i: identity.set_user_active(s, actor, _id(i.id, "User"), i.active),
    )
    grant_role = mutation_field(
        RoleGrantInput,
        UserPayload,
        "user",
        "Grant a role to a user (no-op if held).",
        USERS,
        lambda s, actor, i: identity.grant_role(
            s, actor, decode_reference(i.user_id, "User", "user_id"), i.role
        ),
    )
    revoke_role = mutation_field(
        RoleGrantInput,
        UserPayload,
        "user",
        "Revoke a role from a user (no-op if not held).",
        USERS,
        lambda s, actor, i: identity.revoke_role(
            s, actor, decode_reference(i.user_id, "User", "user_id"), i.role
        ),
    )
    create_role = mutation_field(
        CreateRoleInput,
        RolePayload,
        "role",
        "Create a role.",
        USERS,
        lambda s, actor, i: identity.create_role(s, actor, given_values(i, {})),
    )
    update_role = mutation_field(
        UpdateRoleInput,
        RolePayload,
        "role",
        "Change a role's description or scopes.",
        USERS,
        lambda s, actor, i: identity.update_role(
            s, actor, _id(i.id, "Role"), i.expected_version, given_values(i, {})
        ),
    )
    create_oauth_client = mutation_field(
        CreateOAuthClientInput,
        OAuthClientPayload,
        ("client", "client_secret"),
        "Register an OAuth client. A confidential client's secret is in the payload, once.",
        CLIENTS,
        lambda s, actor, i: identity.create_client(
            s,
            actor,
            name=i.name,
            grant_types=i.grant_types,
            scopes=i.scopes,
            redirect_uris=i.redirect_uris,
            confidential=i.confidential,
        ),
        name="createOAuthClient",
    )
    update_oauth_client = mutation_field(
        UpdateOAuthClientInput,
        OAuthClientPayload,
        "client",
        "Change an OAuth client.",
        CLIENTS,
        lambda s, actor, i: identity.update_client(
            s, actor, _id(i.id, "OAuthClient"), i.expected_version, given_values(i, {})
        ),
        name="updateOAuthClient",
    )
    set_oauth_client_active = mutation_field(
        SetActiveInput,
        OAuthClientPayload,
        "client",
        "Enable or disable an OAuth client; its tokens fail at the next request.",
        CLIENTS,
        lambda s, actor, i: identity.set_client_active(
            s, actor, _id(i.id, "OAuthClient"), i.active
        ),
        name="setOAuthClientActive",
    )
    rotate_oauth_client_secret = mutation_field(
        RotateOAuthClientSecretInput,
        OAuthClientPayload,
        ("client", "client_secret"),
        "Give a confidential client a new secret (in the payload, once); the old one stops "
        "working.",
        CLIENTS,
        lambda s, actor, i: identity.rotate_client_secret(s, actor, _id(i.id, "OAuthClient")),
        name="rotateOAuthClientSecret",
    )
