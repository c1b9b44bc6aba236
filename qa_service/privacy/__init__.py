"""Personal data: find customers' numbers in text, mask them, and seal them at rest.

- :mod:`.numbers` finds card, ID-card, mobile, landline and account numbers, written as
  digits or as spoken Chinese numerals, also where ASR split one over two utterances.
- :mod:`.masking` turns what a reader without ``view_pii`` sees into masked text and data.
- :mod:`.keys` holds the key ring: authenticated encryption (AES-256-GCM) for the values
  stored at rest and a keyed hash (HMAC-SHA256) for looking numbers up.

Nothing here imports the database or the web framework; ``qa_service.db`` and
``qa_service.api`` call in.
"""
