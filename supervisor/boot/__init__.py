"""Boot wiring: what each boot phase starts, given a small typed context (see context.py)."""
