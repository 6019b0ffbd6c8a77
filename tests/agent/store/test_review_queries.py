"""The app's reads: keyset pages visit every matching alert once in order, whatever the sort and filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gui.helpers import make_database
from weightwarden.agent.store import Store
from weightwarden.agent.store.review_queries import AlertFilter, AlertSort, fts_query


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_database(tmp_path_factory.mktemp("review") / "ww.db", alerts=57)


@pytest.fixture
def store(database: Path, tmp_path: Path) -> Store:
    copy = tmp_path / "ww.db"
    copy.write_bytes(database.read_bytes())  # each test may write: its own copy
    return Store(copy)


def all_pages(store: Store, flt: AlertFilter, sort: AlertSort, size: int = 5) -> list[str]:
    seen, after = [], None
    while True:
        page = store.review.alert_page(flt, sort, after=after, limit=size)
        seen.extend(a.id for a in page)
        if len(page) < size:
            return seen
        after = (page[-1].sort_value(sort.key), page[-1].sequence)


@pytest.mark.parametrize("key", ["time", "severity", "rule", "model", "status"])
@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("flt", [AlertFilter(), AlertFilter(min_severity=5), AlertFilter(text="rsync"),
                                 AlertFilter(text="rsync", min_severity=5, rule="model-copy")])
def test_pages_cover_each_match_once_in_order(store: Store, key: str, descending: bool, flt: AlertFilter) -> None:
    sort = AlertSort(key, descending)
    ids = all_pages(store, flt, sort)
    rows = {a.id: a for a in store.review.alert_page(flt, sort, limit=1000)}
    assert ids == list(rows) and len(set(ids)) == len(ids) == store.review.alert_count(flt)
    keys = [(rows[i].sort_value(key), rows[i].sequence) for i in ids]
    assert keys == sorted(keys, reverse=descending)
    store.close()


def test_fts_query_quotes_what_people_type() -> None:
    assert fts_query('copy "of" AND -x') == '"copy" """of""" "AND" "-x"'
    assert fts_query("weights.safet") == '"weights.safet"*'
    assert fts_query("model-42") == '"model-42"'  # no prefix on a number: it would match thousands of tokens
    assert fts_query("   ") == ""


def test_count_is_capped_for_free_text(store: Store) -> None:
    assert store.review.alert_count(AlertFilter(text="copy")) == 57
    from weightwarden.agent.store import review_queries
    with store._lock:
        assert review_queries.alert_count(store._conn, AlertFilter(text="copy"), cap=10) == 11
    store.close()


def test_reviews_change_status_and_are_listed(store: Store) -> None:
    alert_id = store.alerts(limit=1)[0]["id"]
    store.review.add_review(alert_id, "justify", uid=1000, user="ana", text="ok")
    store.review.add_review(alert_id, "false-positive", uid=0, user="root")
    assert store.review.alert(alert_id).status == "false-positive"  # type: ignore[union-attr]
    assert [r["action"] for r in store.review.reviews(alert_id)] == ["justify", "false-positive"]
    assert store.review.alert_count(AlertFilter(statuses=("false-positive",))) == 1
    with pytest.raises(KeyError):
        store.review.add_review("nope", "justify", uid=0, user="root", text="x")
    read_only = Store(store.path, read_only=True)
    with pytest.raises(PermissionError):
        read_only.review.add_review(alert_id, "resolve", uid=0, user="root")
    read_only.close()
    store.close()
