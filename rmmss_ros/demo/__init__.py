"""``rmmss demo``: the node + the sample bag + a sensor failure, live over DDS (``cli.py``)."""
