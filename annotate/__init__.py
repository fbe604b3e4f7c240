"""annotate: automatic head-bound and morph proposals, and the review GUI."""
