"""Model x recipe -> measured row: the ``Runner`` (``runner``), the typed row it builds
(``record``) and the figures it puts in it (``rows``), its result cache (``cache``), the
worker processes that keep a crashing or hanging conversion from taking the run down
(``isolation``), and a result measured on a board (``boards``)."""
