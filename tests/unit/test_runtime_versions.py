"""The op-version -> runtime table and the min-runtime verdict, on hand-made op lists."""

import dataclasses
from pathlib import Path

import pytest

from compressgate.compat import runtime_table
from compressgate.compat.runtime_versions import (
    judge,
    parse_runtime_version_cc,
    parse_version,
    requirement,
)
from compressgate.errors import UserInputError
from compressgate.gate import rules
from compressgate.pipeline.record import ResultRow
from compressgate.recipes import Promise, get_recipe

ROOT = Path(__file__).resolve().parents[2]

# Verbatim lines of runtime_version.cc (including a comment), as the generator reads them.
EXCERPT = '''
          new std::map<std::pair<BuiltinOperator, int>, std::string>({
              {{BuiltinOperator_FULLY_CONNECTED, 11}, "2.15.0"},
              {{BuiltinOperator_FULLY_CONNECTED, 12}, "2.17.0"},
              // The version one of broadcast to op won't be not supported ...
              {{BuiltinOperator_BROADCAST_TO, 2}, "2.5.0"},
              {{BuiltinOperator_TRANSPOSE, 7}, "2.14.4"},
          });
'''


def test_the_generator_parses_every_entry_of_the_cc_map():
    assert parse_runtime_version_cc(EXCERPT) == {
        ("FULLY_CONNECTED", 11): "2.15.0", ("FULLY_CONNECTED", 12): "2.17.0",
        ("BROADCAST_TO", 2): "2.5.0", ("TRANSPOSE", 7): "2.14.4"}


def test_the_generator_refuses_text_without_a_map():
    with pytest.raises(ValueError, match="no"):
        parse_runtime_version_cc("int main() {}")


def test_the_shipped_table_names_its_source_and_holds_known_facts():
    assert "runtime_version.cc" in runtime_table.SOURCE
    assert len(runtime_table.COMMIT) == 40
    table = runtime_table.MIN_RUNTIME
    assert table[("FULLY_CONNECTED", 12)] == "2.17.0"  # dynamic-range FC (TF 2.21)
    assert table[("FULLY_CONNECTED", 1)] == "1.5.0"
    assert ("FULLY_CONNECTED", 99) not in table
    assert all(parse_version(v) for v in table.values())


def test_the_generator_reproduces_the_shipped_table(tmp_path):
    from importlib import util

    spec = util.spec_from_file_location("gen", ROOT / "scripts" / "gen_runtime_table.py")
    gen = util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = gen.render(dict(runtime_table.MIN_RUNTIME), runtime_table.SOURCE,
                      runtime_table.COMMIT)
    assert text == (ROOT / "compressgate" / "compat" / "runtime_table.py").read_text()


@pytest.mark.parametrize(("text", "parsed"), [("2.14", (2, 14, 0)), ("2", (2, 0, 0)),
                                              ("2.14.4", (2, 14, 4)), (" 2.17.0 ", (2, 17, 0))])
def test_versions_parse(text, parsed):
    assert parse_version(text) == parsed


@pytest.mark.parametrize("bad", ["", "v2.14", "2.x", "2.14.0.1", None, 2.14])
def test_bad_versions_are_one_line_user_errors(bad):
    with pytest.raises(UserInputError, match=r"expected a runtime version like '2\.14'"):
        parse_version(bad)


def test_versions_compare_numerically_not_as_text():
    need = requirement([("A", 1), ("B", 1)], {("A", 1): "2.9.0", ("B", 1): "2.10.0"})
    assert need.minimum == "2.10.0"


def test_minimum_is_the_newest_op_and_blockers_are_those_above_the_declared_runtime():
    need = requirement([("FULLY_CONNECTED", 12), ("CONV_2D", 5), ("SOFTMAX", 1),
                        ("FULLY_CONNECTED", 12)])
    assert need.minimum == "2.17.0"
    assert [str(o) for o in need.blockers("2.14")] == ["FULLY_CONNECTED v12"]
    assert need.blockers("2.17") == []
    verdict = judge(need, "2.14")
    assert verdict.ok is False
    assert verdict.measured == "needs runtime >= 2.17.0"
    assert verdict.note == "FULLY_CONNECTED v12 needs runtime 2.17.0 > declared 2.14"


def test_a_patch_release_counts():
    need = requirement([("TRANSPOSE", 7)])
    assert judge(need, "2.14").ok is False
    assert judge(need, "2.14.4").ok is True


def test_unknown_pairs_are_reported_never_guessed():
    need = requirement([("FULLY_CONNECTED", 99), ("CUSTOM:MyOp", 1), ("SOFTMAX", 1)])
    assert [str(o) for o in need.unknown] == ["CUSTOM:MyOp v1", "FULLY_CONNECTED v99"]
    assert need.minimum == "1.5.0"
    verdict = judge(need, "2.14")
    assert verdict.ok is None
    assert "not in TensorFlow's runtime table: CUSTOM:MyOp v1, FULLY_CONNECTED v99" \
        in verdict.note
    assert requirement([("X", 1)], {}).minimum is None


def test_promise_validates_min_runtime():
    assert Promise(min_runtime="2.14").min_runtime == "2.14"
    with pytest.raises(UserInputError, match=r"promise\.min_runtime"):
        Promise(min_runtime="latest")
    with pytest.raises(UserInputError, match=r"promise\.min_runtime"):
        get_recipe("ptq_dynamic").with_overrides({"promise": {"min_runtime": "two"}})


def _row(op_versions):
    return ResultRow("m", "ptq_dynamic", True, input_dtype="float32", output_dtype="float32",
                     op_versions=op_versions)


def test_the_conversion_check_enforces_a_declared_min_runtime():
    promise = dataclasses.replace(get_recipe("ptq_dynamic").promise, min_runtime="2.14")
    late = rules.check_conversion(_row([["FULLY_CONNECTED", 12], ["SOFTMAX", 1]]), promise)
    assert late.failed
    (runtime,) = [r for r in late.rows if r.metric == "min runtime"]
    assert runtime.note == "FULLY_CONNECTED v12 needs runtime 2.17.0 > declared 2.14"
    ok = rules.check_conversion(_row([["FULLY_CONNECTED", 1], ["SOFTMAX", 1]]), promise)
    assert not ok.failed
    unknown = rules.check_conversion(_row([["FULLY_CONNECTED", 99]]), promise)
    assert unknown.failed
    # Without a declaration there is no runtime row at all.
    plain = rules.check_conversion(_row([["FULLY_CONNECTED", 12]]),
                                  get_recipe("ptq_dynamic").promise)
    assert "min runtime" not in {r.metric for r in plain.rows}
