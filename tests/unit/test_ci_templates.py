"""The CI templates in examples/ci/ validate offline against check-jsonschema's bundled
GitHub-workflow and GitLab-CI schemas, and keep the cache's trust boundary: only the
default branch writes the result cache, pull / merge requests only read it."""

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"
TEMPLATES = {"github-actions.yml": "vendor.github-workflows", "gitlab-ci.yml": "vendor.gitlab-ci"}


def validate(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema,
                           str(path)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_validates(name):
    result = validate(EXAMPLES / name, TEMPLATES[name])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name, broken", [
    ("github-actions.yml", ("runs-on: ubuntu-24.04", "runs-onn: ubuntu-24.04")),
    ("gitlab-ci.yml", ("stage: merge", "stagez: merge")),
])
def test_a_broken_template_fails_validation(tmp_path, name, broken):
    # The validator really reads the file: a misspelt key is refused.
    bad = tmp_path / name
    bad.write_text((EXAMPLES / name).read_text().replace(*broken, 1))
    result = validate(bad, TEMPLATES[name])
    assert result.returncode == 1 and broken[1].split(":")[0] in result.stdout


def load(name):
    return YAML(typ="safe").load((EXAMPLES / name).read_text())


def steps(job):
    return job["steps"]


def test_github_only_a_push_to_the_default_branch_saves_the_result_cache():
    jobs = load("github-actions.yml")["jobs"]
    uses = [s.get("uses", "") for job in jobs.values() for s in steps(job)]
    assert not [u for u in uses if u.startswith("actions/cache@")]  # restore/save apart
    saves = [s for job in jobs.values() for s in steps(job)
             if s.get("uses", "").startswith("actions/cache/save")]
    assert saves and all("github.event_name == 'push'" in s["if"]
                         and "default_branch" in s["if"] for s in saves)
    gate = jobs["gate"]
    run = " ".join(s.get("run", "") for s in steps(gate))
    assert "tox -e gate" in run and '--compressgate-shard "$SHARD"' in run
    assert "tox -e merge" in " ".join(s.get("run", "") for s in steps(jobs["merge"]))
    summary = [s["run"] for s in steps(jobs["merge"]) if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary == ['cat reports/summary.md >> "$GITHUB_STEP_SUMMARY"\n'
                       'if [ -f reports/baseline-diff.md ]; then cat reports/baseline-diff.md'
                       ' >> "$GITHUB_STEP_SUMMARY"; fi\n']
    update = " ".join(s.get("run", "") for s in steps(jobs["update-baselines"]))
    assert '--compressgate-update="$UPDATE"' in update


def test_gitlab_merge_requests_only_pull_the_result_cache():
    doc = load("gitlab-ci.yml")
    assert doc["variables"]["CACHE_POLICY"] == "pull"
    assert all(c["policy"] == "$CACHE_POLICY" for c in doc[".result-cache"]["cache"])
    writers = [(job, rule["if"]) for job, spec in doc.items() if isinstance(spec, dict)
               for rule in spec.get("rules", []) if "pull-push" in str(rule.get("variables"))]
    assert writers == [("gate", '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && '
                                '$CI_COMMIT_REF_PROTECTED == "true"')]
    assert doc["gate"]["artifacts"]["reports"]["junit"] == "reports/shard-*/junit.xml"
    assert '"$CI_NODE_INDEX/$CI_NODE_TOTAL"' in " ".join(doc["gate"]["script"])
    assert [r.get("when") for r in doc["update-baselines"]["rules"]] == ["manual"]


def test_github_records_a_new_class_on_the_default_branch_only():
    gate = load("github-actions.yml")["jobs"]["gate"]
    record = gate["env"]["RECORD"]
    assert "github.event_name == 'push'" in record and "default_branch" in record
    assert "'--compressgate-update=missing'" in record  # adds figures, moves none
    assert '"$SHARD" $RECORD' in " ".join(s.get("run", "") for s in steps(gate))
    handed = [s for s in steps(gate) if s.get("with", {}).get("path") == "recorded/"]
    assert [s["if"] for s in handed] == ["always() && env.RECORD != ''"]
    assert handed[0]["with"]["name"] == "baselines-shard-${{ matrix.shard }}"
    merge = steps(load("github-actions.yml")["jobs"]["merge"])
    collected = [s for s in merge if s.get("with", {}).get("pattern") == "baselines-shard-*"]
    assert collected and collected[0]["with"]["merge-multiple"] is True


def test_gitlab_records_a_new_class_on_the_default_branch_only():
    doc = load("gitlab-ci.yml")
    assert doc["variables"]["RECORD"] == ""
    recording = [(rule["if"], rule["variables"]["RECORD"]) for rule in doc["gate"]["rules"]
                 if "RECORD" in rule.get("variables", {})]
    assert recording == [('$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && '
                          '$CI_COMMIT_REF_PROTECTED == "true"', "--compressgate-update=missing")]
    assert '"$CI_NODE_INDEX/$CI_NODE_TOTAL" $RECORD' in " ".join(doc["gate"]["script"])
    assert "recorded/" in doc["gate"]["artifacts"]["paths"]
    assert "recorded/" in doc["merge"]["artifacts"]["paths"]
