"""The ServerApp: the installed commonweal package's (see pyproject.toml)."""

from commonweal.federated.server_app import app as app
