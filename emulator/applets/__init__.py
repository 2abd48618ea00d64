"""On-card applications."""
