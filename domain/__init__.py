"""The domain: models (with their computed SQL), services that hold the rules,
settings, the database engine and sessions. Imports nothing above it."""
