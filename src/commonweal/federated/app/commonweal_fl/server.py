"""The ServerApp: the installed commonweal package's (see pyproject.toml)."""

from commonweal.federated import server_app

# An assignment, not `import … as app`: Flower checks the name statically (by its AST).
app = server_app.app
