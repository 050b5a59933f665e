"""MCP toolsets. Each module exposes ``register(server, app)``; ``server.py`` mounts them in order.

Annotations drive read-only filtering: every tool that can change the cluster is registered with
``destructive_hint=True`` and goes through ``app.gate``; every other tool is ``read_only_hint=True``.
"""
