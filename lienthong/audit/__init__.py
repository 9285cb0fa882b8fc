"""The audit record: events from the router, projected into SQL, read by auditors."""
