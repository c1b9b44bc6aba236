"""Trends for managers and supervisors: violations, complaint signals, complaints, early
warning and review statistics, by week or month, per team and per agency, each with its
change against the period before.

:mod:`.records` loads plain records from the database (within the caller's scope),
:mod:`.figures` computes every table from them (pure), :mod:`.tables` lays the tables out
with Chinese headers for the XLSX exports, and :mod:`.reviewed` is the one place that
reads what the review loop decided.
"""
