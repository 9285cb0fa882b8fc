"""The local broker's KRaft cluster id (a CI run once failed on an id starting with '-')."""

from __future__ import annotations

import base64

from lienthong.transport.local_broker import new_cluster_id


def test_an_id_that_would_start_with_a_dash_is_drawn_again() -> None:
    dash_first = b"\xf8" + bytes(15)  # URL-safe base64 of 0b111110... begins with '-'
    assert base64.urlsafe_b64encode(dash_first).decode().startswith("-")
    draws = iter([dash_first, dash_first, bytes(range(16))])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert cluster_id == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")


def test_ids_are_22_url_safe_characters_and_never_start_with_a_dash() -> None:
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
