"""The packaged replay recording (tiny.jsonl.gz), built by bench/replay/chunks.py."""
