"""The v1 HTTP API (Quart): routes, auth, schemas, errors, streams."""
