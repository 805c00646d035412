"""Which runtime loads a file and whether it computes the same: TensorFlow's runtime table
(``runtime_table``, ``runtime_versions``), the oldest-runtime check (``legacy``) and byte
reproducibility of conversions (``reproducibility``)."""
