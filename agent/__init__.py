"""The Weightwarden endpoint agent: sensors, identification, detection, store, forwarding, CLI."""

__version__ = "0.1.0"
