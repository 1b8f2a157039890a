"""Model and image maths: a U²-Net family network, a session around it, post-processing.

Nothing here watches files, reads configuration or configures logging.
"""
