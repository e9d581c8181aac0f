"""What a person sees: the Textual dashboard (tui/) and the headless printer."""
