"""The review queue: cut-outs the confidence score calls doubtful, held for a person."""
