"""Stage 1 — ingest: decode recordings (PyAV), read their sidecar metadata, import the dial
log.
"""
