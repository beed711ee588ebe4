"""The batched engine: many compatible runs trained together in one process."""
