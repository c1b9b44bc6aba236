"""Complaint prevention: the complaint register, evidence packs, outcomes and coaching.

Managers are judged by the bank on complaints (how many, how serious, whether the agency
was at fault), and the bank's service plan asks the agency to prove compliant collection
with recordings. A layer around the pipeline like ``review/``: it reads and writes the
database through sessions the caller owns and never imports the web framework, so the API
and the CLI share one implementation. :mod:`.vocabulary` holds the plan's words (levels,
sources, types, outcomes); :mod:`qa_service.trends` counts them.
"""
