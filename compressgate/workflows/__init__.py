"""Workflows that drive several layers at once: ``compressgate init`` (a starter config
measured on the user's model), the reproducibility check of fresh conversions, and the
agreement of an old runtime with LiteRT (``legacy``)."""
