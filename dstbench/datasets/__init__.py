"""Dataset loaders (they read the real on-disk formats; the datasets plugin registers them)."""
