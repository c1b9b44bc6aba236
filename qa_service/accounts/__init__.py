"""Accounts and access: who may log in, with which role, and which calls each person sees.

A layer around the pipeline, like ``db/``: it stores users, browser sessions, API tokens and
the agent roster through SQLAlchemy, and gives the API a :class:`~.roles.Principal` per
request plus a where-clause (:mod:`.scope`) that keeps every query inside the caller's scope.
"""
