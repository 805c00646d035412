"""The accept paste, applied as printed, keeps what the user wrote: in compressgate.toml,
in ``[tool.compressgate]`` of pyproject.toml and in an included JSON file, a recipe that
already has an override (a prune setting, a promise field, a why) fails its size promise;
the printed override replaces the old one as its first line says, the config still loads
with the user's fields, and the same figures pass. No TensorFlow."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib

import pytest
from test_session import ROW, FakeRunner

from compressgate.gate.accept import WHY, accept_block, override_lines
from compressgate.gate.session import GateSession, Settings
from compressgate.project import config as project_config
from compressgate.recipes import get_recipe

# prune_int8 promises a gzip ratio of 8, ptq_int8 a size ratio of 3.5: both fail.
MEASURED = ROW | {"size_ratio": 2.0046, "gzip_ratio": 2.5046}
USER_WHY = "0.6 keeps accuracy on the long tail"
MODEL = 'model = "m.keras"\ndata = "m.npz"\n'
# The user's override of prune_int8, then a table after it that the paste must not touch.
TOML_OVERRIDE = ("[{p}models.m.recipe_overrides.prune_int8]\n"
                 "prune = {{ final_sparsity = 0.6 }}\n"
                 f'why = "{USER_WHY}"\n'
                 "[{p}models.m.recipe_overrides.prune_int8.promise]\n"
                 "max_drop_pts = 1.5\n"
                 "[{p}models.m.tolerances]\n"
                 "accuracy_pts = 0.7\n")


class SpecRunner(FakeRunner):
    """FakeRunner whose recipes carry the config's overrides, as the real runner's do
    (``specs``: the session's, set once the session is made)."""

    def row(self, model, recipe):
        return dataclasses.replace(super().row(model, recipe), recipe=recipe)

    def recipe(self, model, name):
        return self.specs[model].recipe(get_recipe(name))


def _write(tmp_path, syntax):
    """A project in ``syntax`` whose model has a prune_int8 override; returns the config
    file the gate is pointed at and the file that defines the model."""
    if syntax == "json":
        manifest = tmp_path / "manifest.json"
        manifest.write_text(json.dumps({"models": {"m": {
            "model": "m.keras", "data": "m.npz", "tolerances": {"accuracy_pts": 0.7},
            "recipe_overrides": {"prune_int8": {
                "prune": {"final_sparsity": 0.6}, "promise": {"max_drop_pts": 1.5},
                "why": USER_WHY}}}}}, indent=2))
        config = tmp_path / "compressgate.toml"
        config.write_text('include = ["manifest.json"]\n')
        return config, manifest
    prefix = "tool.compressgate." if syntax == "pyproject" else ""
    name = "pyproject.toml" if syntax == "pyproject" else "compressgate.toml"
    config = tmp_path / name
    # pyproject.toml: other tools' tables around the gate's, which the paste leaves alone.
    head, tail = ('[project]\nname = "x"\n', "[tool.other]\nkeep = 1\n") \
        if syntax == "pyproject" else ("", "")
    config.write_text(f"{head}[{prefix}models.m]\n{MODEL}{TOML_OVERRIDE.format(p=prefix)}"
                      f"{tail}")
    return config, config


def _session(config):
    settings = Settings(baselines=config.parent / "baselines", config=config, reports=None,
                        recipes=("prune_int8", "ptq_int8"))
    runner = SpecRunner(MEASURED)
    session = GateSession(settings, runner=runner)
    runner.specs = session.specs
    return session


def _paste_toml(text, paste):
    """``text`` with each pasted table in place of the table of its name and that table's
    sub-tables (as the printed instruction says), or appended where there is none."""
    for block in re.split(r"\n(?=\[)", paste.strip()):
        header = block.splitlines()[0]
        name = header.strip("[]")
        own = re.compile(rf"^\[{re.escape(name)}(\.[^\]]+)?\]\n(?:[^\[\n].*\n?)*", re.M)
        if own.search(text):
            text = own.sub("", text)
        text = text.rstrip("\n") + "\n" + block + "\n"
    return text


def _paste_json(path, model, members):
    """The JSON file with each member replacing the entry of its name in the model's
    recipe_overrides (as the printed instruction says)."""
    doc = json.loads(path.read_text())
    doc["models"][model].setdefault("recipe_overrides", {}).update(
        json.loads("{" + members.rstrip(",") + "}"))
    path.write_text(json.dumps(doc, indent=2))


def _hint(message):
    """The printed lines under the failure: the instruction line and the paste."""
    lines = message.splitlines()
    start = next(i for i, line in enumerate(lines) if "to accept the measured figure" in line)
    body = [line.strip() for line in lines[start + 1:] if line.startswith("    ")]
    return lines[start], "\n".join(body)


def _kept(config, defining):
    """The loaded spec of ``m``, after asserting that the user's fields are still there
    (the prune setting, the other promise field, their why, the table after the override)
    beside the accepting promise."""
    spec = project_config.load(config).specs["m"]
    override = spec.recipe_overrides["prune_int8"]
    assert override["prune"] == {"final_sparsity": 0.6}
    assert override["promise"] == {"max_drop_pts": 1.5, "min_gzip_ratio": 2.5}
    assert override["why"] == f"{USER_WHY}; {WHY}"  # theirs, and room for the new reason
    recipe = spec.recipe(get_recipe("prune_int8"))
    assert recipe.prune.final_sparsity == 0.6 and recipe.promise.max_drop_pts == 1.5
    assert recipe.promise.min_gzip_ratio == 2.5
    assert spec.tolerances.accuracy_pts == 0.7
    if defining.name == "pyproject.toml":
        assert tomllib.loads(defining.read_text())["tool"]["other"] == {"keep": 1}
    return spec


@pytest.mark.parametrize("syntax", ["toml", "pyproject", "json"])
def test_the_failure_hint_pasted_as_printed_keeps_the_users_override(tmp_path, syntax):
    config, defining = _write(tmp_path, syntax)
    outcome = _session(config).run_check("m", "prune_int8", "size")
    assert outcome.failed
    instruction, paste = _hint(outcome.message())
    assert f"in {defining.name} replace" in instruction and "keeps every field" in instruction
    if syntax == "json":
        assert 'replace the entry "prune_int8" of models.m.recipe_overrides' in instruction
        assert paste.startswith('"prune_int8": {')
        _paste_json(defining, "m", paste)
    else:
        prefix = "tool.compressgate." if syntax == "pyproject" else ""
        assert f"[{prefix}models.m.recipe_overrides.prune_int8] (with its sub-tables)" \
            in instruction
        tomllib.loads(paste)  # valid TOML as printed
        defining.write_text(_paste_toml(defining.read_text(), paste))
    spec = _kept(config, defining)
    assert "ptq_int8" not in spec.recipe_overrides
    session = _session(config)
    assert not session.run_check("m", "prune_int8", "size").failed
    ptq = session.run_check("m", "ptq_int8", "size")
    assert ptq.failed  # not accepted: still fails, and its override is one to add
    assert ("add this entry to models.m.recipe_overrides (create it if absent)"
            if syntax == "json" else "add these lines") in _hint(ptq.message())[0]


@pytest.mark.parametrize("syntax", ["toml", "pyproject", "json"])
def test_the_run_wide_paste_keeps_the_users_override_and_adds_the_new_one(tmp_path,
                                                                          syntax):
    config, defining = _write(tmp_path, syntax)
    session = _session(config)
    outcomes = [session.run_check("m", r, "size") for r in ("prune_int8", "ptq_int8")]
    assert all(o.failed for o in outcomes)
    lines = accept_block([o.accept for o in outcomes])
    assert lines[0].startswith("To accept every broken promise of this run on purpose")
    assert str(defining) in lines[0] and "keeping every field you set" in lines[0]
    if syntax == "json":
        assert lines[1] == "    models.m.recipe_overrides:"
        _paste_json(defining, "m", "\n".join(line.strip() for line in lines[2:]))
    else:
        paste = "\n".join(line.strip() for line in lines[1:])
        tomllib.loads(paste)
        defining.write_text(_paste_toml(defining.read_text(), paste))
    spec = _kept(config, defining)
    assert spec.recipe_overrides["ptq_int8"] == {"promise": {"min_size_ratio": 2.0},
                                                 "why": WHY}
    session = _session(config)
    assert not any(session.run_check("m", r, "size").failed
                   for r in ("prune_int8", "ptq_int8"))


def test_accepting_again_keeps_the_first_accepted_field_and_one_placeholder(tmp_path):
    config, _ = _write(tmp_path, "toml")
    first = _session(config).run_check("m", "prune_int8", "size")
    config.write_text(_paste_toml(config.read_text(), _hint(first.message())[1]))
    # Later the user promises a size ratio that the file then misses.
    config.write_text(config.read_text().replace("max_drop_pts = 1.5,",
                                                 "max_drop_pts = 1.5, min_size_ratio = 3.0,"))
    second = _session(config).run_check("m", "prune_int8", "size")
    assert second.failed and "min_size_ratio 3.0 -> 2.0" in second.message()
    config.write_text(_paste_toml(config.read_text(), _hint(second.message())[1]))
    override = project_config.load(config).specs["m"].recipe_overrides["prune_int8"]
    assert override["promise"] == {"max_drop_pts": 1.5, "min_gzip_ratio": 2.5,
                                   "min_size_ratio": 2.0}
    assert override["why"] == f"{USER_WHY}; {WHY}"
    assert not _session(config).run_check("m", "prune_int8", "size").failed


def test_the_run_wide_paste_is_one_paragraph_per_file():
    entries = [{"model": "a", "recipe": "ptq_int8", "config": "/p/compressgate.toml",
                "promise": {"min_size_ratio": 1.7}},
               {"model": "b", "recipe": "ptq_int8", "config": "/p/manifest.json",
                "promise": {"min_size_ratio": 1.6}, "override": {"why": "small"}}]
    lines = accept_block(entries)
    blank = lines.index("")
    assert "/p/compressgate.toml" in lines[0] and "/p/manifest.json" in lines[blank + 1]
    assert tomllib.loads("\n".join(x.strip() for x in lines[1:blank]))["models"]["a"][
        "recipe_overrides"]["ptq_int8"] == {"promise": {"min_size_ratio": 1.7}, "why": WHY}
    assert json.loads("{" + lines[blank + 3].strip() + "}") == {"ptq_int8": {
        "promise": {"min_size_ratio": 1.6}, "why": f"small; {WHY}"}}


def test_every_kind_of_value_prints_as_the_toml_it_was():
    """Any field a user can set survives the TOML it is printed as: nested tables,
    arrays, booleans, quotes, newlines and non-ASCII in strings, keys that need quoting;
    an absent value (JSON's null) is left out, as TOML has none."""
    override = {"prune": {"final_sparsity": 0.6, "structure": None},
                "promise": {"targets": ["tflm"], "faster_than_float": True,
                            "min_size_ratio": 1e-05},
                "quantization": "int8", "why": 'a "quoted"\nreason, 4 µs\x7f',
                "odd key": {}}
    lines = override_lines("my.model", "r 1", override, None)
    assert lines[0] == '[models."my.model".recipe_overrides."r 1"]'
    parsed = tomllib.loads("\n".join(lines))["models"]["my.model"]["recipe_overrides"]["r 1"]
    assert parsed == {**override, "prune": {"final_sparsity": 0.6}}
    assert override_lines("m", "r", {"promise": {"max_drop_pts": float("inf")}}, None)[1] \
        == "promise = { max_drop_pts = inf }"
