"""What to gate: the project config, its model specs and data, where they come from and
the metric each model is scored on."""
