"""One module per quality check; each registers itself with @register_check and is found by the registry."""
