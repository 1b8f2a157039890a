"""Training pipeline for the default model; never imported by the daemon."""
