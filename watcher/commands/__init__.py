"""One module per CLI command that has grown its own room (see watcher/cli.py)."""
