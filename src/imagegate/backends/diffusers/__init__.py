"""The diffusers backend: open text-to-image models through Hugging Face diffusers.

Only the worker's model process imports this package (torch lives here); the registry
names it as ``backend = "diffusers"``.
"""

from imagegate.backends.diffusers.backend import DiffusersBackend

__all__ = ["DiffusersBackend"]
