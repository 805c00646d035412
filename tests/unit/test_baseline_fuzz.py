"""Whatever is in a baseline file, loading it returns a baseline or raises a one-line
BaselineError naming the file; never another exception."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from compressgate.errors import BaselineError
from compressgate.gate import baselines as bl

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)
documents = st.fixed_dictionaries(
    {},
    optional={"schema": st.sampled_from([1, 2, "1", None]), "model": st.just("m"),
              "recipe": st.just("r"), "metrics": json_values | st.dictionaries(
                  st.sampled_from(sorted(bl.METRIC_DIGITS)), json_values),
              "environment": json_values},
)


def _load(tmp_path, text):
    path = tmp_path / "r.json"
    path.write_text(text)
    try:
        return bl.load(path, "m", "r")
    except BaselineError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return None


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_arbitrary_text(tmp_path_factory, text):
    _load(tmp_path_factory.mktemp("fuzz"), text)


@settings(max_examples=200, deadline=None)
@given(doc=documents)
def test_arbitrary_documents(tmp_path_factory, doc):
    loaded = _load(tmp_path_factory.mktemp("fuzz"), json.dumps(doc))
    if loaded is not None:
        assert all(isinstance(loaded.metrics.get(k, 0), int | float) for k in bl.METRIC_DIGITS)
