"""``rmmss replay``: evaluate a bag offline through the node's pipeline, with scheduled sensor failures."""
