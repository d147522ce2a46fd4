"""One module per image-search provider; importing a module registers it."""
