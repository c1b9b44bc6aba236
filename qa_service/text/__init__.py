"""Text utilities shared by the stages: pinyin keys, clause splitting, synthetic ASR noise,
character-bigram overlap."""
