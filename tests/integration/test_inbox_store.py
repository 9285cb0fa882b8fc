"""An inbox store made by a build older than any release is refused with a sentence, not a SQL error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from consumers.inbox_store import InboxStore
from lienthong.errors import ConfigurationError


def test_an_inbox_store_without_a_column_of_this_version_is_refused_clearly(tmp_path: Path) -> None:
    folder = tmp_path / "000.00.00.G22"
    folder.mkdir()
    with sqlite3.connect(folder / "inbox.db") as conn:  # notices as a development build made them: no `signed`
        conn.execute("CREATE TABLE notices (message_id VARCHAR(64) PRIMARY KEY, document_id TEXT NOT NULL, "
                     "from_agency VARCHAR(16) NOT NULL, status VARCHAR(2) NOT NULL, staff TEXT NOT NULL, "
                     "description TEXT NOT NULL, reason TEXT, time DATETIME NOT NULL, received_at DATETIME NOT NULL)")
    with pytest.raises(ConfigurationError) as err:
        InboxStore(folder)
    assert "its table notices lacks signed" in err.value.message and "Move the folder aside" in err.value.message


def test_a_current_inbox_store_opens_again(tmp_path: Path) -> None:
    InboxStore(tmp_path / "a").close()
    store = InboxStore(tmp_path / "a")
    assert store.documents() == []
    store.close()
