"""Training imagegate's own small models from code: synthetic data, tokenizers, models, judges."""
