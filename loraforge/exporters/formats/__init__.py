"""One module per trainer format; importing a module registers its exporter."""
