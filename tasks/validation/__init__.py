"""Validation of products before they enter the science database (pure steps)."""
