"""Shared utilities: atomic file writes, checkpoint loading, typed config overlay, logging."""
