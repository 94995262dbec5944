"""The deploy tests use the session's tiny demo checkpoints (``checkpoints`` in
tests/conftest.py)."""
