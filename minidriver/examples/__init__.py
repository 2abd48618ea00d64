"""Runnable examples of the minidriver API (``python -m minidriver.examples.<name>``)."""
