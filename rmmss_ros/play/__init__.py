"""``rmmss play``: publish a bag live over DDS with its original timing."""
