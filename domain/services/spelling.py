"""How the API spells a field: snake_case in Python, camelCase in GraphQL and in the
messages callers read. The one place that converts."""

from __future__ import annotations


def camel(name: str) -> str:
    """``target_end`` -> ``targetEnd``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def camel_path(path: str | None) -> str | None:
    """A dotted input path, each part camelCased: ``measurements.3.kpi_key`` ->
    ``measurements.3.kpiKey``."""
    if path is None:
        return None
    return ".".join(camel(part) for part in path.split("."))
