"""The training engine: run specs, data batches, the masked optimizer and the training loop."""
