"""Background discovery of model files anywhere under the homes and configured trees (docs/design.md)."""

from weightwarden.agent.discovery.discovery import Discovery, DiscoverySettings
from weightwarden.agent.discovery.observations import DiscoveryDone
from weightwarden.agent.discovery.roots import default_roots

__all__ = ["Discovery", "DiscoveryDone", "DiscoverySettings", "default_roots"]
