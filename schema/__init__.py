"""The GraphQL schema: the only package that imports strawberry."""
