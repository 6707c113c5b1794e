"""GraphQL object types, inputs and enums, one module per entity."""
