"""Stage 2 — speech recognition: VAD, Whisper model and decoder, per-speaker transcription,
mono speaker attribution, text normalisation.
"""
