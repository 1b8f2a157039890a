"""Processing: one job to its end (the runner), where mattes are made, image IO and outputs."""
