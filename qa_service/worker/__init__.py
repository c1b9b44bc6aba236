"""The job queue around the pipeline: submission, the analysis job, rq and in-process queues.

The database is the record of each call's progress (queued → analyzing → analyzed |
failed); Redis only carries the jobs, and the sweep rebuilds them from the database after
a flush, a killed worker or a restart. See ``submit`` (uploads), ``jobs`` (the job
function and the per-process runtime), ``queue`` (rq and in-process queues) and ``sweep``.
"""
