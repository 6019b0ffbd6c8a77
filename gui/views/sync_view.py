"""Central sync: the SIEM destinations the agent forwards to, their delivery status and refused records
(dead letters), a live test, and an editor that adds, changes or removes destinations in the running agent.

The destinations come from the agent itself (`forward-list`) while it runs, so the table shows what is
really in force, including those configured from the app; without an agent the config file's are shown.
Every change goes through the control socket: the agent checks it with its config schema, keeps it in
its drop-in file and applies it live. Only admins may change destinations; the agent decides that from
the kernel's peer credentials, and the app only mirrors it to explain a disabled button.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from weightwarden.agent import control
from weightwarden.agent.config import FORWARD_KEYS, Config, ForwardDestination, default_config
from weightwarden.agent.forward.destination_types import SECRET_KEYS, SYSLOG_PORTS
from weightwarden.agent.forward.status import status_rows
from weightwarden.agent.located.problem import Problem
from weightwarden.gui.models.sync_status import DeadLetterModel, SyncStatusModel
from weightwarden.gui.source import DataSource
from weightwarden.gui.sync_config import (
    CHOICE_KEYS,
    FORM_KEYS,
    destination_toml,
    form_problems,
    form_text,
    form_values,
    proxy_note,
    validate,
)
from weightwarden.gui.widgets import row_table

HINTS = {"address": "siem.example.org", "port": str(SYSLOG_PORTS["tls"]), "transport": "tls", "url": "https://splunk.example.org:8088",
         "token": "(HEC token)", "token_file": "/etc/weightwarden/hec.token", "index": "weightwarden",
         "format": "(type's default)", "ca_file": "/etc/ssl/certs/siem-ca.pem", "api_key": "(Elasticsearch API key)",
         "verify_tls": "true", "path": "/var/log/weightwarden/events.jsonl", "max_bytes": "104857600",
         "ack": "auto", "client_cert": "/etc/weightwarden/agent.pem", "client_key": "/etc/weightwarden/agent.key",
         "server_name": "siem.example.org", "timeout_seconds": "15", "username": "weightwarden",
         "password": "(password)"}
CHANGE_TIMEOUT = 60.0  # seconds: replacing a forwarder waits for its current attempt to end
RED, GREEN = "#c62828", "#2e7d32"


def _coloured(colour: str, text: str) -> str:
    return f"<span style='color:{colour}'>{text}</span>"


def _problem_list(problems: list[Problem] | list[str]) -> str:
    items = "".join(f"<li>line {p.line}: {p.message}</li>" if isinstance(p, Problem) and p.line
                    else f"<li>{p.message if isinstance(p, Problem) else p}</li>" for p in problems)
    return f"{_coloured(RED, 'Not valid:')}<ul>{items}</ul>"


class SyncView(QWidget):
    def __init__(self, source: DataSource, config: Config | None = None) -> None:
        super().__init__()
        self.source = source
        self.config = config or default_config()
        self.destinations: list[dict[str, Any]] = []  # as the agent lists them (name, managed, values, ...)
        self.model = SyncStatusModel()
        self.dead_model = DeadLetterModel()
        layout = QVBoxLayout(self)
        self.heading = QLabel()
        self.heading.setWordWrap(True)
        layout.addWidget(self.heading)
        self.table = _table(self.model, 170)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.test_button = QPushButton("Send test event")
        self.test_button.clicked.connect(self.send_test)
        self.edit_button = QPushButton("Edit")
        self.edit_button.clicked.connect(self.edit_selected)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove_selected)
        for button in (self.test_button, self.edit_button, self.remove_button):
            buttons.addWidget(button)
        self.result = QLabel()
        self.result.setWordWrap(True)
        buttons.addWidget(self.result, 1)
        layout.addLayout(buttons)
        self.dead_box = QGroupBox("Refused records (dead letters)")
        dead_layout = QVBoxLayout(self.dead_box)
        self.dead_label = QLabel()
        self.dead_label.setWordWrap(True)
        dead_layout.addWidget(self.dead_label)
        self.dead_table = _table(self.dead_model, 130)
        dead_layout.addWidget(self.dead_table)
        layout.addWidget(self.dead_box)
        layout.addWidget(self._editor(), 1)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        source.agentChanged.connect(lambda _status: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------ the editor

    def _editor(self) -> QGroupBox:
        box = QGroupBox("Destination")
        outer = QHBoxLayout(box)
        form = QFormLayout()
        self.form = form
        self.name = QLineEdit()
        self.name.setPlaceholderText("splunk")
        self.kind = QComboBox()
        self.kind.addItems(list(FORM_KEYS))
        form.addRow("Name", self.name)
        form.addRow("Type", self.kind)
        self.fields: dict[str, QLineEdit] = {}  # each key's text
        self.field_rows: dict[str, QWidget] = {}  # and the widget of its row: the edit, or the list holding it
        for key in sorted({k for keys in FORM_KEYS.values() for k in keys}):
            edit = QLineEdit()
            widget: QWidget = edit
            if key in CHOICE_KEYS:  # a fixed list; editable, so what a config file holds shows as it is
                choice = QComboBox()
                choice.setLineEdit(edit)
                choice.addItems(["", *CHOICE_KEYS[key]])
                widget = choice
            edit.setPlaceholderText(HINTS.get(key, ""))
            if key in SECRET_KEYS:
                edit.setEchoMode(QLineEdit.EchoMode.Password)
            widget.setToolTip(FORWARD_KEYS[key].spec.doc)
            self.fields[key] = edit
            self.field_rows[key] = widget
            form.addRow(key, widget)
        # No key sets a proxy: the agent reads HTTPS_PROXY / NO_PROXY from its environment (docs/forwarding.md).
        self.proxy = QLabel()
        self.proxy.setWordWrap(True)
        self.proxy.setToolTip("The agent reaches https:// receivers through the proxy its service environment "
                              "names (HTTPS_PROXY, NO_PROXY; `sudo systemctl edit weightwarden`), as curl does.")
        form.addRow("proxy", self.proxy)
        outer.addLayout(form, 1)
        right = QVBoxLayout()
        self.preview = QPlainTextEdit()
        self.preview.setReadOnly(True)
        right.addWidget(self.preview, 1)
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        right.addWidget(self.problems)
        row = QHBoxLayout()
        self.new_button = QPushButton("New")
        self.new_button.clicked.connect(self.clear_form)
        self.validate_button = QPushButton("Validate")
        self.validate_button.clicked.connect(self.validate)
        self.copy_button = QPushButton("Copy TOML")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._toml(masked=False)))
        self.save_button = QPushButton("Apply to agent")
        self.save_button.setObjectName("primary")
        self.save_button.clicked.connect(self.apply)
        for button in (self.new_button, self.validate_button, self.copy_button, self.save_button):
            row.addWidget(button)
        right.addLayout(row)
        outer.addLayout(right, 1)
        self.kind.currentTextChanged.connect(lambda _t: self._kind_changed())
        self.name.textChanged.connect(lambda _t: self._preview())
        for edit in self.fields.values():
            edit.textChanged.connect(lambda _t: self._preview())
        self.fields["url"].textChanged.connect(lambda _t: self._show_proxy())
        self._kind_changed()
        return box

    def _kind_changed(self) -> None:
        wanted = FORM_KEYS[self.kind.currentText()]
        for key, edit in self.fields.items():
            edit.setEnabled(key in wanted)
            self.field_rows[key].setEnabled(key in wanted)
            self.form.setRowVisible(self.field_rows[key], key in wanted)  # only what this type uses
        self.form.setRowVisible(self.proxy, "url" in wanted)
        self._show_proxy()
        self._preview()

    def _show_proxy(self) -> None:
        self.proxy.setText(proxy_note(self.kind.currentText(), self.fields["url"].text()))

    def _form(self) -> dict[str, str]:
        return {k: e.text() for k, e in self.fields.items() if e.isEnabled()}

    def _toml(self, *, masked: bool) -> str:
        values = self._form()
        if masked:  # the preview never shows a secret in clear
            values = {k: "********" if k in SECRET_KEYS and v else v for k, v in values.items()}
        return destination_toml(self.name.text().strip() or "NAME", self.kind.currentText(), values)

    def _preview(self) -> None:
        self.preview.setPlainText(self._toml(masked=True))

    def clear_form(self) -> None:
        self.name.clear()
        self.name.setReadOnly(False)
        for key, edit in self.fields.items():
            edit.clear()
            edit.setPlaceholderText(HINTS.get(key, ""))
        self.problems.clear()

    def validate(self) -> bool:
        """Check the form with the agent's config rules; an edit that keeps a stored secret counts it."""
        if not self.name.text().strip():
            self.problems.setText(_coloured(RED, "Give the destination a name."))
            return False
        problems: list[Problem] | list[str] = [
            p for p in validate(self._toml(masked=False)) if not self._kept_secret_covers(p)]
        if not problems:  # what the schema cannot see: the TLS files, server_name, settings that go unused
            problems = form_problems(self.kind.currentText(), self._form())
        if problems:
            self.problems.setText(_problem_list(problems))
            return False
        self.problems.setText(_coloured(GREEN, "Valid."))
        return True

    def _kept_secret_covers(self, problem: Problem) -> bool:
        """'needs token' is no problem when editing a destination whose token the agent already holds."""
        current = self._destination(self.name.text().strip())
        kept = set(current["secrets_set"]) if current and current.get("managed") else set()
        return "needs token" in problem.message and bool(kept & {"token"})

    def apply(self) -> None:
        if not self.validate():
            return
        name = self.name.text().strip()
        values = form_values(self.kind.currentText(), self._form())
        reply = self._change({"op": "forward-set", "name": name, "values": values})
        if reply.get("ok"):
            change = (reply.get("changes") or {}).get(name, "applied")
            self.problems.setText(_coloured(GREEN, f"Applied: {name} {change}. Kept in {reply.get('file')}."))
            self.name.setReadOnly(True)

    def edit_selected(self) -> None:
        selected = self._selected()
        current = self._destination(selected["destination"]) if selected else None
        if current is None:
            return
        self.clear_form()
        self.name.setText(current["name"])
        self.name.setReadOnly(True)  # a new name is a new destination: use New
        self.kind.setCurrentText(current["type"])
        for key, text in form_text(current["values"]).items():
            if key in self.fields:
                self.fields[key].setText(text)
        for key in current.get("secrets_set", []):
            if key in self.fields:
                self.fields[key].setPlaceholderText("(set; leave empty to keep it)")
        self._preview()

    def remove_selected(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        name = selected["destination"]
        reply = self._change({"op": "forward-remove", "name": name})
        if reply.get("ok"):
            self.result.setText(_coloured(GREEN, f"Removed {name}: the agent no longer forwards to it."))

    def _change(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a change to the agent and show its answer; the table then shows what is in force."""
        try:
            reply = control.request(self.source.control_path, payload, timeout=CHANGE_TIMEOUT)
        except control.ControlError as error:
            reply = {"ok": False, "error": str(error)}
        if not reply.get("ok"):
            self.problems.setText(_problem_list(reply.get("problems") or [str(reply.get("error"))]))
        self.refresh()
        return reply

    # ------------------------------------------------------------------ status

    def refresh(self) -> None:
        agent = self.source.agent
        self.destinations = self._listed() if agent.reachable else []
        if agent.reachable:
            where = "the running agent"
            destinations = [_destination_of(d) for d in self.destinations]
        else:
            where = f"{self.config.source or 'built-in defaults (no config file)'} (the agent is not running)"
            destinations = list(self.config.forward)
        self.heading.setText(f"Destinations of <b>{where}</b>")
        rows: list[dict[str, Any]] = []
        error = ""
        if destinations and self.source.store is not None:
            try:
                rows = status_rows(self.source.database_path, destinations)
            except Exception as failure:  # an older database without outbox tables
                error = str(failure)
        selected = self._selected()
        self.model.set_rows(rows)
        if selected is not None:
            names = [r["destination"] for r in rows]
            if selected["destination"] in names:
                self.table.selectRow(names.index(selected["destination"]))
        if not destinations:
            self.result.setText("No destinations configured: alerts stay on this machine. Add one below.")
        elif error:
            self.result.setText(f"Delivery status unavailable: {error}")
        self._selection_changed()

    def _listed(self) -> list[dict[str, Any]]:
        try:
            reply = control.request(self.source.control_path, {"op": "forward-list"}, timeout=5.0)
        except control.ControlError:
            return []
        return list(reply.get("destinations") or []) if reply.get("ok") else []

    def _destination(self, name: str) -> dict[str, Any] | None:
        return next((d for d in self.destinations if d["name"] == name), None)

    def summary(self) -> str:
        """One line per destination for the overview."""
        lines = []
        for row in self.model.rows:
            colour = RED if row["last_error"] else "#ef6c00" if row["backlog"] > 1000 else GREEN
            state = row["last_error"] or f"backlog {row['backlog']:,}"
            if row["dead_letters"]:
                state += f", {row['dead_letters']:,} refused"
            lines.append(f"{_coloured(colour, '●')} <b>{row['destination']}</b> ({row['type']}): {state}")
        return "<br>".join(lines)

    def _selected(self) -> dict[str, Any] | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.row(rows[0].row()) if rows else None

    def _selection_changed(self) -> None:
        selected = self._selected()
        self._show_dead_letters(selected)
        self._update_buttons(selected)

    def _show_dead_letters(self, selected: dict[str, Any] | None) -> None:
        listed = selected["dead_letter_list"] if selected else []
        self.dead_table.setVisible(bool(listed))  # the space goes to the editor while there is nothing to list
        if selected is None:
            self.dead_model.set_rows([])
            total = sum(r["dead_letters"] for r in self.model.rows)
            self.dead_label.setText(f"{total:,} records refused in all. Select a destination to list its own."
                                    if total else "No destination refused any record.")
            return
        self.dead_model.set_rows(listed)
        count = selected["dead_letters"]
        self.dead_label.setText(
            f"{selected['destination']} refused {count:,} records as malformed; they are kept here and never "
            f"retried" + (f" (newest {len(listed)} listed)." if count > len(listed) else ".")
            if count else f"{selected['destination']} refused no record.")

    def _update_buttons(self, selected: dict[str, Any] | None) -> None:
        agent = self.source.agent
        if not agent.reachable:
            test = change = "The agent is not running: it sends tests and applies changes itself."
        else:
            test = "" if selected else "Select a destination."
            change = "" if agent.admin else (f"Only an admin (root or the agent's admin group) may change "
                                             f"destinations; you are {agent.user or 'not one'}.")
        self.test_button.setEnabled(not test)
        self.test_button.setToolTip(test or "The agent sends one test record and waits for confirmation.")
        self.save_button.setEnabled(not change)
        self.save_button.setToolTip(change or "The agent checks the destination, keeps it in its drop-in file "
                                              "and starts forwarding to it at once.")
        from_app = bool(selected and selected.get("configured_in") == "app")
        for button, verb in ((self.edit_button, "edit"), (self.remove_button, "remove")):
            reason = change or ("Select a destination." if selected is None else
                                "" if from_app else f"Defined in the config file: {verb} it there.")
            button.setEnabled(not reason)
            button.setToolTip(reason or f"{verb.capitalize()} this destination in the running agent.")

    def send_test(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        reply = self.source.act({"op": "sync-test", "destination": selected["destination"]})
        if reply.get("ok"):
            self.result.setText(_coloured(GREEN, f"Delivered test record {reply.get('id')} to "
                                                 f"{selected['destination']} in {reply.get('milliseconds')} ms."))
        else:
            self.result.setText(_coloured(RED, f"Test failed: {reply.get('error')}"))
        self.refresh()


def _destination_of(listed: dict[str, Any]) -> ForwardDestination:
    """A listed destination back as the config's dataclass (the status rows want its type and target)."""
    known = {k: v for k, v in listed["values"].items() if k in ForwardDestination.__dataclass_fields__}
    return ForwardDestination(**known, name=listed["name"], managed=bool(listed.get("managed")))


def _table(model: Any, height: int) -> QTableView:
    table = row_table(model)
    header = table.horizontalHeader()
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    table.setMaximumHeight(height)
    return table
