"""Logical models: which model a file belongs to (placement), and the catalog of models built from the
inventory's files (`weightwarden models`)."""

from weightwarden.agent.models.catalog import LogicalModel, catalog
from weightwarden.agent.models.placement import Placement, place

__all__ = ["LogicalModel", "Placement", "catalog", "place"]
