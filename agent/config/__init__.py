"""The agent's TOML configuration: load it, check it, describe it.

Rooms: schema.py (the section dataclasses are the schema), values.py (one value against its key),
loader.py (a file into a Config, every problem with file and line), forward_tables.py ([forward.NAME]
against its destination type, declared in forward/destination_types.py), drop_in.py (destinations set
from the app), writer.py (TOML text: the default config, [forward.NAME] tables). The located TOML reader
itself is located/toml_reader.py. Import from here; the rooms are an arrangement, not an interface.
"""

from weightwarden.agent.config.drop_in import (
    MANAGED_DESTINATIONS,
    check_managed_destinations,
    managed_destinations_file,
)
from weightwarden.agent.config.loader import ConfigError, check_config, load_config
from weightwarden.agent.config.schema import (
    DATABASE_NAME,
    FORWARD_KEYS,
    KIB,
    MIB,
    AgentSection,
    Config,
    DetectSection,
    ForwardDestination,
    GuiSection,
    InventorySection,
    KeySpec,
    ScanSection,
    SensorsSection,
    StoreSection,
    WatchSection,
    default_config,
)
from weightwarden.agent.config.writer import default_config_text, forward_table_lines, managed_destinations_text
from weightwarden.agent.located.problem import Problem

ConfigProblem = Problem  # the name config problems had before there was one Problem type for every file

__all__ = [
    "DATABASE_NAME",
    "FORWARD_KEYS",
    "KIB",
    "MANAGED_DESTINATIONS",
    "MIB",
    "AgentSection",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DetectSection",
    "ForwardDestination",
    "GuiSection",
    "InventorySection",
    "KeySpec",
    "ScanSection",
    "SensorsSection",
    "StoreSection",
    "WatchSection",
    "check_config",
    "check_managed_destinations",
    "default_config",
    "default_config_text",
    "forward_table_lines",
    "load_config",
    "managed_destinations_file",
    "managed_destinations_text",
]
