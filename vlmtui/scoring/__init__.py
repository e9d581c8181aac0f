"""Scoring answers against reference answers: normalisation, metrics, the judge's prompt and reply, statistics."""
