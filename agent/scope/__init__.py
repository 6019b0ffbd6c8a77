"""The agent's scope: whose models it protects and where it looks for copies, computed, never listed by hand.

Rooms: accounts.py (the local accounts that are people, from /etc/passwd, login.defs, shells), environment.py
(what sessions may have in their environment, read from files, never run), stores.py (where a person's
models and copies usually are; the machine's own stores), scope.py (the frozen Scope: per person, shared,
not covered and why), watcher.py (a poll that reports a changed scope as ScopeChanged on the ordered
queue), bounded.py (looks at homes with a deadline: a hung share never blocks the agent).
"""

from weightwarden.agent.scope.scope import Scope, SystemFiles, UserScope, compute_scope
from weightwarden.agent.scope.watcher import ScopeChanged, ScopeWatcher

__all__ = ["Scope", "ScopeChanged", "ScopeWatcher", "SystemFiles", "UserScope", "compute_scope"]
