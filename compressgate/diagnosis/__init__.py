"""Why a recipe lost accuracy, for one model x recipe: the quantization debugger's
per-layer error and the keep_float search collected (``collect``, on
``backends.analysis``), the recovery recipe to try (``advice``, pure) and all of it
written for people (``report``, also the one-line note under a failed accuracy check)."""
