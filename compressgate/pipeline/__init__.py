"""Model x recipe -> measured row: the ``Runner``, its result cache, and the worker
processes that keep a crashing or hanging conversion from taking the run down."""
