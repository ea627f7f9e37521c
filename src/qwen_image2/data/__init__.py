"""Training data: the shared sample schema (`records`), curation, and (later) caches and buckets."""
