"""The OpenAI-compatible Batch API: files and batches stored per tenant, run by the gateway itself.

``store`` keeps files (on disk) and batch state (SQLite); ``jsonl`` checks an input file line by
line; ``shapes`` builds OpenAI's file and batch objects; ``runner`` executes batches through the
normal request pipeline at background priority; ``upload`` reads a multipart upload to disk.
"""
