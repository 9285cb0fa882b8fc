"""Alembic environment for the audit store: runs on the connection the store hands over."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, version_table="alembic_version_audit")
with context.begin_transaction():
    context.run_migrations()
