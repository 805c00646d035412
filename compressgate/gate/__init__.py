"""The release gate, without pytest: the rules (``rules``), the baseline store
(``baselines``), the typed records a check produces (``records``), the run state
(``session``), accepting a broken promise on purpose (``accept``) and sharding
(``shards``). The pytest plugin on top of it is ``compressgate.plugin``."""
