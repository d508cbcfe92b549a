"""The ClientApp: the installed commonweal package's (see pyproject.toml)."""

from commonweal.federated import client_app

# An assignment, not `import … as app`: Flower checks the name statically (by its AST).
app = client_app.app
