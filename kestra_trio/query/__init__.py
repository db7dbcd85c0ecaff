"""Reads for the CLI and the HTTP API alike: pages, keyset cursors, filters, follow, liveness."""
