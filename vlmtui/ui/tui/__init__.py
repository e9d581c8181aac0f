"""The Textual dashboard: the only part of vlmtui that imports Textual."""
