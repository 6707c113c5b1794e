"""Portfolio Graph: application core (settings, database, models, services, CLI)."""
