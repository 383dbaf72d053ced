"""Draft sources for speculative decoding: n-gram lookups over a slot's own tokens (ngram.py), the
draft model and its context (draft_model.py), and how much a slot drafts (budget.py).

engine/speculative.py picks among them per slot; the scheduler verifies what they propose.
"""
