"""pytest-benchmark timings of ``Interpreter.invoke`` for every model x recipe.

``tox -e bench`` (not part of the gate's verdicts, so ``tox -e gate`` does not spend the
calibrated rounds on them); ``-- --benchmark-autosave`` stores a run and ``--
--benchmark-compare --benchmark-compare-fail=median:10%`` compares against the last one.
These absolute
times are for people comparing runs on one machine; the gate's own latency verdicts use
interleaved ratios (see the ``latency`` checks).
"""


def test_invoke(compressgate_case, compressgate_session, benchmark):
    invoke, info = compressgate_session.invoker(compressgate_case.model,
                                                compressgate_case.recipe)
    benchmark.group = compressgate_case.model
    benchmark.extra_info.update(info)
    benchmark(invoke)
