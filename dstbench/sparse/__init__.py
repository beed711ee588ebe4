"""Masks and their updates: selection with random tie-breaking, prune/grow, the Masker."""
