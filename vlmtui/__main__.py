"""``python -m vlmtui`` runs the command line."""

from vlmtui.cli import entry

entry()
