"""Shims naming the installed commonweal package's Flower apps (see pyproject.toml)."""
