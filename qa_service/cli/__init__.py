"""The `qa-service` command line (typer)."""
