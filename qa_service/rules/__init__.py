"""Stage 3a — the rule catalogue and the rules decided from audio (acoustic) and metadata (dial
log).
"""
