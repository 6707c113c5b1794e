"""The committed contract: ``schema.graphql`` is this function's output."""

from __future__ import annotations

from schema.build import schema


def render_sdl() -> str:
    return schema.as_str().rstrip("\n") + "\n"
