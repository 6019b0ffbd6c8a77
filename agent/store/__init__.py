"""The local SQLite store: the only code in Weightwarden that runs SQL."""

from weightwarden.agent.store.migrations import SchemaTooNewError
from weightwarden.agent.store.store import Store, StoreError
from weightwarden.agent.store.writer import RecordWriter

__all__ = ["RecordWriter", "SchemaTooNewError", "Store", "StoreError"]
