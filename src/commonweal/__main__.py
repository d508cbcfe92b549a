"""``python -m commonweal`` runs the CLI."""

from commonweal.cli import main

main()
