"""The release gate: every bundled model x recipe x check, against baselines/.

The plugin parametrizes this over what ``--compressgate-models/--compressgate-recipes``
select; a failure names the model, the recipe and the check and prints a small table.
"""


def test_gate(compressgate_check):
    compressgate_check()
