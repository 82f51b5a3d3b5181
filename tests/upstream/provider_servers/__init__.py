"""Contract servers of the image APIs the upstream adapters speak, run on 127.0.0.1."""
