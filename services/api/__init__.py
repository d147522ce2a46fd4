"""The REST facade of LoRA Forge (FastAPI): the only door for clients."""
