"""Models: the inventory of logical models the agent protects."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel, QVBoxLayout, QWidget

from weightwarden.gui.models.inventory import ModelInventoryModel
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

    def refresh(self) -> None:
        review = self.source.review
        summaries = review.model_summaries() if review is not None else []
        self.model.set_rows(summaries)
        files = sum(s["files"] for s in summaries)
        copies = sum(s["copies"] for s in summaries)
        self.summary.setText(f"<b>{len(summaries)}</b> models in {files} files are protected; "
                             f"<b>{copies}</b> copies seen.")
