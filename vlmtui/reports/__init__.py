"""Reading session logs and turning them into reports and comparisons."""
