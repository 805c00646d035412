"""Model x recipe -> measured row: the ``Runner``, the typed row it builds (``record``),
its result cache, and the worker processes that keep a crashing or hanging conversion
from taking the run down (``isolation``)."""
