"""What to gate: the project config, its model specs and data, where they come from, the
metric each model is scored on, and ``compressgate init``'s starter config."""
