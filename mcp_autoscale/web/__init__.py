"""The streamable-HTTP transport: the ASGI app, its guards, its session limits and its credentials."""
