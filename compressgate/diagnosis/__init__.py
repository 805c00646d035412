"""Why a recipe lost accuracy: per-layer quantization error ranked and the keep_float
search (``analysis``, pure), collected for one model x recipe (``collect``) and written
for people (``report``)."""
