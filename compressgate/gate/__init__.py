"""The release gate, without pytest: the rules (``rules``; ``latency``, ``targets``,
``device`` on boards), the baseline store and its update policy (``baselines``,
``update``), the typed records a check produces (``records``), the run (``session``) and
what it measured per case (``state``), accepting a broken promise on purpose
(``accept``), sharding (``shards``) and a latency record that spans processes
(``envelope``). The pytest plugin on top of it is ``compressgate.plugin``."""
