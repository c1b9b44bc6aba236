"""The HTTP API (``shared/spec/api.md``): a thin FastAPI layer over the repository, the
accounts service, the audio store and the job queue. Build it with
:func:`qa_service.api.app.create_app`; ``qa-service serve`` runs it under uvicorn."""
