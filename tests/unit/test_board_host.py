"""The ssh command line of a board: key auth only, bounded waits, no option injection."""

from compressgate.measure.remote import Host, board_class


def test_the_ssh_command_uses_keys_only_and_bounds_the_connect():
    argv = Host("pi5", "ci@pi5.local", "/opt/venv/bin/python", port=2222,
                identity="/keys/ci", options=("ProxyJump=bastion",),
                connect_timeout=4.5).command("true")
    assert argv[0] == "ssh"
    assert "BatchMode=yes" in argv and "ConnectTimeout=5" in argv
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == "/keys/ci" and "IdentitiesOnly=yes" in argv
    assert "ProxyJump=bastion" in argv
    assert argv[-3:] == ["--", "ci@pi5.local", "true"]


def test_a_destination_that_looks_like_an_option_stays_a_destination():
    argv = Host("x", "-oProxyCommand=touch /tmp/owned", "python").command("true")
    assert argv[-3:-1] == ["--", "-oProxyCommand=touch /tmp/owned"]


def test_the_python_path_is_quoted_for_the_board_shell():
    script = Host("x", "h", "/opt/my venv/bin/python; rm -rf ~").script()
    assert "py='/opt/my venv/bin/python; rm -rf ~'" in script


def test_a_board_is_a_machine_class_of_its_own():
    fp = {"arch": "aarch64", "isa": ["asimd", "asimddp"], "isa_cap": None}
    assert board_class("pi5", fp) == "aarch64 asimd+asimddp (board pi5)"
