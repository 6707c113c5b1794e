"""The application: the one composition root that builds the ASGI app and the CLI
(app factory, HTTP middleware, logging, embedded database start-up)."""
