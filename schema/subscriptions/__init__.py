"""GraphQL subscriptions: the root type (``root``), the WebSocket transport
(``transport``), the per-process fan-out of the database's change notifications
(``hub``) and the per-subscription context (``context``)."""
