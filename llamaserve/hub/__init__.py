"""Models from Hugging Face and URLs: which files `-hf <user>/<repo>[:quant]` means (names.py), the hub
cache laid out as llama.cpp lays it out (cache.py), the hub's API (client.py), resumable verified
transfers (transfer.py), their progress (progress.py), and the whole fetch (fetch.py)."""
