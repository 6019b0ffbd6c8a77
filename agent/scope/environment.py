"""What a user's sessions may have in their environment, read from files, never by running anything.

Model tools move their stores with variables (HF_HOME, OLLAMA_MODELS, ...). A login shell's ~/.profile
could set them too, but running a user's shell code as root is out of the question; what can be known
is what the session managers read themselves:
- /etc/environment (pam_env): `NAME=value` lines, quotes allowed, no expansion by pam; `export ` tolerated;
- ~/.pam_environment (pam_env, user file): `NAME=value` lines or `NAME DEFAULT=value OVERRIDE=value` with
  `@{HOME}` and `${VAR}`;
- environment.d (/etc/environment.d/*.conf, ~/.config/environment.d/*.conf; the systemd user manager):
  `NAME=value` with `$VAR`, `${VAR}`, `${VAR:-default}` and `${VAR:+alternative}`.

A variable set in several places can mean different things in different sessions (an ssh login reads
pam_env, a desktop session environment.d too), so every value found is kept (`Environment.values`), and
the caller covers all of them. Values that stay relative or refer to an unknown variable are dropped.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from weightwarden.agent.scope.accounts import read_bounded

MAX_ENV_FILE_BYTES = 256 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(
    r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}"  # ${VAR}, ${VAR:-default}, ${VAR:+alternative}
    r"|\$([A-Za-z_][A-Za-z0-9_]*)"  # $VAR
    r"|@\{([A-Za-z_]+)\}")  # @{HOME} (pam_env)


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    value: str  # absolute, expanded
    source: str  # file:line


@dataclass
class Environment:
    """Every absolute value each variable was given, with where; `known` resolves later references."""

    known: dict[str, str]
    settings: list[Setting] = field(default_factory=list)

    def values(self, name: str) -> list[Setting]:
        return [setting for setting in self.settings if setting.name == name]

    def add(self, name: str, value: str, source: str) -> None:
        self.known[name] = value
        if os.path.isabs(value):
            self.settings.append(Setting(name, os.path.normpath(value), source))


def session_environment(home: str, user: str, *, system_files: Iterable[str], user_home_files: bool = True
                        ) -> Environment:
    """What the environment files give `user` (home `home`): the system files first, then the user's own.

    `system_files` are /etc/environment and /etc/environment.d/*.conf (injectable for tests);
    `user_home_files` reads ~/.pam_environment and ~/.config/environment.d/*.conf.
    """
    env = Environment(known={"HOME": home, "USER": user, "LOGNAME": user})
    for path in system_files:
        read_into(env, path, pam_user_syntax=False)
    if user_home_files:
        read_into(env, os.path.join(home, ".pam_environment"), pam_user_syntax=True)
        for path in sorted(glob.glob(glob.escape(os.path.join(home, ".config", "environment.d")) + "/*.conf")):
            read_into(env, path, pam_user_syntax=False)
    return env


def system_environment_files(etc: str = "/etc") -> list[str]:
    return [os.path.join(etc, "environment"),
            *sorted(glob.glob(glob.escape(os.path.join(etc, "environment.d")) + "/*.conf"))]


def read_into(env: Environment, path: str, *, pam_user_syntax: bool) -> None:
    """Add the settings of one file; a missing, unreadable or odd file adds nothing (never raises)."""
    data = read_bounded(path, [], missing_ok=True, limit=MAX_ENV_FILE_BYTES)
    if data is None:
        return
    for number, line in enumerate(data.decode("utf-8", "surrogateescape").splitlines(), 1):
        for name, raw in parse_line(line, pam_user_syntax=pam_user_syntax):
            value = expand(raw, env.known)
            if value is not None:
                env.add(name, value, f"{path}:{number}")


def parse_line(line: str, *, pam_user_syntax: bool) -> list[tuple[str, str]]:
    """The (name, unexpanded value) pairs one line assigns: none for comments and invalid lines."""
    text = line.strip()
    if not text or text.startswith("#"):
        return []
    if text.startswith("export ") or text.startswith("export\t"):
        text = text[len("export"):].lstrip()
    name, equals, rest = text.partition("=")
    if equals and _NAME.fullmatch(name):
        return [(name, unquote(rest.strip()))]
    if pam_user_syntax:  # NAME [DEFAULT=value] [OVERRIDE=value]
        first, _, options = text.partition(" ")
        if not _NAME.fullmatch(first):
            return []
        found = re.findall(r"(DEFAULT|OVERRIDE)=(\"[^\"]*\"|'[^']*'|\S+)", options)
        return [(first, unquote(value)) for _option, value in found]
    return []


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def expand(value: str, known: Mapping[str, str]) -> str | None:
    """`~`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alternative}` and `@{VAR}` from `known`;
    None when a reference cannot be resolved (the value would be a guess)."""
    if value == "~" or value.startswith("~/"):
        value = known["HOME"] + value[1:]
    unresolved = False

    def replace(match: re.Match[str]) -> str:
        nonlocal unresolved
        name = match.group(1) or match.group(4) or match.group(5)
        current, operator, word = known.get(name), match.group(2), match.group(3) or ""
        if operator == "-":
            return current or word
        if operator == "+":
            return word if current else ""
        if current is None:
            unresolved = True
            return ""
        return current

    expanded = _REFERENCE.sub(replace, value)
    return None if unresolved or not expanded else expanded
