"""What a run tells people: ``summary.json/.csv/.md`` and ``index.html`` (``summary``,
from ``view``, ``markdown``, ``html``, ``plots``), the change against the baselines
(``changes``), a gate run's terminal summary and files (``gate_run``) and the merge of
sharded runs (``merge``)."""
