"""What to gate: the project config (``config``), its model specs and data (``models``),
where they come from (``sources``), the metric each model is scored on (``metrics``) and
what a Keras file says of itself without TensorFlow (``kerasfile``)."""
