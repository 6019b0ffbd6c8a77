"""The app lists a falsified alert as the database now says, but flagged as rejected by verify, with why.
Before issue 15 it showed it as low severity, model "nothing", false positive, unflagged."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from tests.adversarial.conftest import Log
from weightwarden.agent.store import Store
from weightwarden.gui.models.alerts import REJECTED_MARK, AlertsTableModel


def _model(log: Log) -> tuple[Store, AlertsTableModel]:
    store = Store(log.database, read_only=True)  # as the app opens it
    model = AlertsTableModel(store.review)
    model.reload()
    return store, model


def test_falsified_alert_is_flagged_in_the_alerts_table(log: Log, qtbot: QtBot) -> None:
    log.db().execute("update alerts set severity = 1, model = 'nothing', status = 'false-positive' where id = ?",
                     [log.alert_id])
    store, model = _model(log)
    try:
        (position,) = [p for p in range(model.rowCount()) if model.row(p).id == log.alert_id]
        index = model.index(position, 0)
        assert str(model.data(index)).startswith(REJECTED_MARK)
        assert "severity column says 1" in str(model.data(index, 3))  # the tooltip says why
        assert model.rejected_reason(log.alert_id)
    finally:
        store.close()


def test_untouched_alerts_are_not_flagged(log: Log, qtbot: QtBot) -> None:
    store, model = _model(log)
    try:
        assert model.rowCount() >= 1
        assert all(model.rejected_reason(model.row(p).id) is None for p in range(model.rowCount()))
    finally:
        store.close()
