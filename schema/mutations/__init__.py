"""Mutations: one input object, one payload with the result and typed user errors."""
