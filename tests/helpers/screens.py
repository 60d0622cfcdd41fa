"""Screenshots browser tests saved in this run; tests/conftest.py lists them in the summary."""

SAVED: list[str] = []
