"""``python -m jfhpo`` runs the command line."""

from jfhpo.cli import entry

entry()
