"""One module per CLI command, named as the command (``unet-matting check`` -> ``check.py``)."""
