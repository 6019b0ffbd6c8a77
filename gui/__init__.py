"""The Weightwarden desktop app (PySide6): reads the agent's store, never writes it."""
