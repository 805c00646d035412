"""`.ci/run` is exactly the README's test command (one command for people and for CI)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_run_is_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert command.endswith("python3 -m tox")
    assert f"```bash\n{command}\n```" in (ROOT / "README.md").read_text()
    assert "openssh-server" in command and "chromium" in command
