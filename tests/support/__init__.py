"""Test helpers shared by unit tests and benchmarks: tiny models built from configs, fake services."""
