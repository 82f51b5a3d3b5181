"""imagegate: a self-hosted image generation server speaking the v3 prediction API."""

__version__ = "0.1.0"
