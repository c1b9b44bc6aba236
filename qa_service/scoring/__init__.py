"""Stage 4 — scoring: the QA rubric and a call's score (also after review or a rubric
change).
"""
