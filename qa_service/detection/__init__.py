"""Stage 3b — speech-rule detection: lexicons, their schema, the utterance classifier, the
sentence encoder and the fusion of their evidence.
"""
