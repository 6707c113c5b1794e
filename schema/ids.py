"""Opaque global IDs: base64url of ``TypeName:primaryKey``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from domain.errors import InvalidInput

MAX_PK = 2**63 - 1  # PostgreSQL's bigint


def encode_id(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


def decode_id(global_id: str, *, field: str = "id") -> tuple[str, int]:
    """Return (type name, primary key); a malformed ID is an INVALID input error."""
    try:
        padded = global_id + "=" * (-len(global_id) % 4)
        type_name, _, pk = base64.urlsafe_b64decode(padded.encode("ascii")).decode().partition(":")
        number = int(pk)
        # Primary keys are bigint: a larger number names nothing, and the driver could
        # not even send it.
        if not type_name.isidentifier() or not 0 < number <= MAX_PK or str(number) != pk:
            raise ValueError
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidInput(f"`{global_id[:64]}` is not a valid global ID.", field=field) from None
    return type_name, number


def decode_ids_of(
    type_name: str, global_ids: Sequence[str] | None, field: str
) -> tuple[int, ...] | None:
    """IDs that must all be of one type, as used by filters."""
    if global_ids is None:
        return None
    keys = []
    for global_id in global_ids:
        found, pk = decode_id(global_id, field=field)
        if found != type_name:
            raise InvalidInput(f"`{field}` expects {type_name} IDs; got a {found} ID.", field=field)
        keys.append(pk)
    return tuple(keys)
