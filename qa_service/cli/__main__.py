"""`python -m qa_service.cli` runs the command line."""

from qa_service.cli.main import app

app()
