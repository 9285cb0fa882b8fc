"""Receivers and projectors: read inboxes and the audit topic, verify, store, acknowledge."""
