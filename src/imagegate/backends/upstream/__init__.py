"""The ``upstream`` backend: jobs forwarded to an image API (WaveSpeed, GPTProto, another
imagegate, fal, Replicate, OpenAI). Adapters speak each provider's API; the worker's
upstream pool (``imagegate.worker.upstream``) runs them."""
