"""The human review loop: review states, the risk-ordered queue, decisions, feedback, appeals.

A layer around the pipeline (like ``db/`` and ``worker/``): it reads and writes the
database through SQLAlchemy sessions the caller owns, and never imports the web framework,
so the API, the CLI and the worker share one implementation. :mod:`.states` holds the one
transition table every step goes through.
"""
