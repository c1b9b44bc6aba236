"""Audit trail and retention: who did what, when, from where, provably unaltered.

A layer around the pipeline like ``accounts/``: :mod:`.events` appends hash-chained events
(:func:`~.events.record_event` is the one call every other module uses), :mod:`.chain`
verifies the chain and checkpoints it when old rows are purged, :mod:`.reviews` records the
periodic reviews the bank's plan requires, and :mod:`.retention` purges calls and events
past their legal retention period, never a call under a hold (open appeal or complaint).
"""
