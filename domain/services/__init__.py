"""Read and write rules of the domain, independent of GraphQL."""
