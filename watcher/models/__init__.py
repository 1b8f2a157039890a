"""Models: which model runs (the control file, live switching) and fetching them."""
