"""Alembic migrations (async env); one revision per schema change."""
