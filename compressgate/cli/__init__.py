"""The ``compressgate`` command (``main``: the one parser; ``commands``: what each
subcommand does)."""
