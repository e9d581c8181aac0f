"""The dashboard screen and its modal dialogs (help, quit confirmation, filter, case details)."""
