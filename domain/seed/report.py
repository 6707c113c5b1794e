"""What a seeding run inserted, for the CLI and the app's startup log."""

from __future__ import annotations

from dataclasses import dataclass

ENTITIES = (
    "teams",
    "products",
    "initiatives",
    "constraints",
    "kpis",
    "measurements",
    "glossary_terms",
)


@dataclass
class SeedReport:
    """Rows inserted per entity; all zero and ``skipped`` when the data was already there."""

    dataset: str
    teams: int = 0
    products: int = 0
    initiatives: int = 0
    constraints: int = 0
    kpis: int = 0
    measurements: int = 0
    glossary_terms: int = 0
    skipped: bool = False

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ENTITIES}

    def __str__(self) -> str:
        if self.skipped:
            return f"{self.dataset}: already present, nothing inserted"
        counts = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in self.counts().items())
        return f"{self.dataset}: inserted {counts}"
