"""Authentication and authorization: scopes, tokens, principals, the built-in OAuth
authorization server (``auth.oauth``), and the models and services of users, roles
and clients. Knows nothing about GraphQL; imports only the domain below it."""
