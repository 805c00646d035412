"""Which runtime loads a file: TensorFlow's table of builtin op versions per runtime
release (``runtime_table``, generated) and the version parsing and requirement check on
it (``runtime_versions``)."""
