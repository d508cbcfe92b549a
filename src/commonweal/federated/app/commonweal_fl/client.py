"""The ClientApp: the installed commonweal package's (see pyproject.toml)."""

from commonweal.federated.client_app import app as app
