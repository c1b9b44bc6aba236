"""Alembic migrations for the service database (run in code by ``qa_service.db.migrate``)."""
