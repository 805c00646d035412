"""``[boards.NAME]``: the target devices a project gates on, read from its config."""

from pathlib import Path

import pytest

from compressgate.errors import UserInputError
from compressgate.project import config

BOARD = '[boards.pi5]\nssh = "ci@pi5.local"\npython = "/opt/venv/bin/python"\n'


def test_a_board_reads_as_an_ssh_host(tmp_path):
    (tmp_path / "compressgate.toml").write_text(
        BOARD + 'port = 2222\nidentity = "keys/ci"\nssh_options = ["ProxyJump=lab"]\n'
        "lock_timeout = 600\n")
    host = config.load(tmp_path).boards["pi5"]
    assert (host.name, host.ssh, host.python, host.port) == (
        "pi5", "ci@pi5.local", "/opt/venv/bin/python", 2222)
    assert host.identity == str(tmp_path / "keys" / "ci")
    assert host.options == ("ProxyJump=lab",) and host.lock_timeout == 600
    (tmp_path / "none").mkdir()
    assert config.load(tmp_path / "none").boards == {}


@pytest.mark.parametrize(("text", "expected"), [
    ('[boards.pi5]\npython = "/usr/bin/python3"\n', "boards.pi5.ssh: Field required"),
    (BOARD.replace("/opt/venv/bin/python", "python3"),
     "boards.pi5.python: Value error, expected the absolute path"),
    (BOARD.replace("ci@pi5.local", "ci@pi5 local"), "boards.pi5.ssh: Value error, "
                                                   "expected user@host"),
    (BOARD + "password = 'x'\n", "boards.pi5.password: Extra inputs are not permitted"),
    (BOARD + "port = 0\n", "boards.pi5.port: Input should be greater than or equal to 1"),
])
def test_a_bad_board_is_one_line_naming_the_key(tmp_path, text, expected):
    (tmp_path / "compressgate.toml").write_text(text)
    with pytest.raises(UserInputError) as info:
        config.load(tmp_path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert str(tmp_path / "compressgate.toml") in str(info.value)


def test_the_readme_board_block_loads_with_every_option_set(tmp_path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```toml\n[boards.pi5]")
    block = readme[start + len("```toml\n"):readme.index("```", start + 3)]
    # The commented options too: each is a valid setting.
    (tmp_path / "compressgate.toml").write_text(block.replace("\n# ", "\n"))
    host = config.load(tmp_path).boards["pi5"]
    assert (host.ssh, host.python, host.port, host.lock_timeout) == (
        "ci@pi5.local", "/opt/venv/bin/python", 22, 600)
    assert host.identity == str(tmp_path / "keys" / "ci_ed25519")
