"""Alembic revision scripts, applied in order by ``qa_service.db.migrate``."""
