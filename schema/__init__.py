"""Database schema: table metadata (``schema.tables``) and Alembic migrations."""
