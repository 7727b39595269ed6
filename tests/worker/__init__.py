"""Worker-side tests: the actors at the Link port, and the worker tree."""
