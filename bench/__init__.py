"""trio-a2a benchmark: ``python -m bench`` (see bench/README.md)."""
