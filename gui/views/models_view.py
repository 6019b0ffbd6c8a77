"""Models: the inventory of logical models the agent protects."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel, QVBoxLayout, QWidget

from weightwarden.agent.activity import STATUS_KEY
from weightwarden.agent.cli.status_cmd import staleness
from weightwarden.agent.serving.section import servers_in
from weightwarden.gui.models.inventory import ModelInventoryModel
from weightwarden.gui.models.serving import ServingModel, serving_rows
from weightwarden.gui.source import DataSource
from weightwarden.gui.widgets import row_table


class ModelsView(QWidget):
    def __init__(self, source: DataSource) -> None:
        super().__init__()
        self.source = source
        self.model = ModelInventoryModel()
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        layout.addWidget(self.summary)
        self.table = row_table(self.model)
        self.table.verticalHeader().setDefaultSectionSize(26)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for column, width in enumerate((210, 120, 80, 50, 300, 200, 95, 150, 60)):
            header.resizeSection(column, width)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        # Model servers the running agent found (agent/serving, docs/serving.md)
        self.serving_summary = QLabel()
        layout.addWidget(self.serving_summary)
        self.serving = ServingModel()
        self.serving_table = row_table(self.serving)
        layout.addWidget(self.serving_table)

    def refresh(self) -> None:
        review = self.source.review
        summaries = review.model_summaries() if review is not None else []
        self.model.set_rows(summaries)
        files = sum(s["files"] for s in summaries)
        copies = sum(s["copies"] for s in summaries)
        self.summary.setText(f"<b>{len(summaries)}</b> models in {files} files are protected; "
                             f"<b>{copies}</b> copies seen.")
        raw = self.source.store.state(STATUS_KEY) if self.source.store is not None else None
        snapshot = json.loads(raw) if raw else None
        servers = servers_in(snapshot) if snapshot is not None and not staleness(snapshot)[0] else []
        self.serving.set_rows(serving_rows(servers))
        exposed = sum(1 for s in servers if s.exposed)
        if snapshot is None or staleness(snapshot)[0]:
            text = "Serving: not known (the agent is not running)."
        elif "serving" not in snapshot:
            text = "Serving: not watched (the agent runs without root, or not on Linux)."
        else:
            text = (f"Serving: <b>{len(servers)}</b> listening processes have a protected model loaded"
                    + (f"; <b style='color:#c62828'>{exposed}</b> answer without credentials beyond loopback."
                       if exposed else "."))
        self.serving_summary.setText(text)
