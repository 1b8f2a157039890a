"""unet-matting: the ingestion daemon (watching, completion, queue, output, logs, notify)."""

__version__ = "0.1.0"
