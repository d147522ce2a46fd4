"""Pure image functions on bytes, PIL images and numpy arrays."""
