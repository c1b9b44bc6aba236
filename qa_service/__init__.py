"""Speech-analytics QA for outsourced credit-card collection calls.

The package is a pipeline of small stages (ingest → transcribe → scan → score)
over frozen dataclasses, with thin persistence, job and web layers around it.
"""

__version__ = "0.1.0"
