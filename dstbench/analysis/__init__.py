"""Analyses built on the engine (the pruned-set overlap of criteria, ...)."""
