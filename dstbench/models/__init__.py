"""Model architectures (plain ``nn.Module`` code; the built-in models plugin registers them)."""
