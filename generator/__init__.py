"""lora-site: a reproducible-article generator for LoRA attention experiments."""

__version__ = "0.1.0"
