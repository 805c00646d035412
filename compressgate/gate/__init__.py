"""The release gate: the rules (``rules``), their tolerances, the baseline store
(``baselines``), the typed records a check produces (``records``), the run state
(``session``) and the pytest plugin (``plugin``)."""
