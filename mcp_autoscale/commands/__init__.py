"""CLI command groups. Each public module defines ``register(app)``; ``_common`` holds shared options."""
