"""Routers of the web site: one module per page family, each defining ``router``."""
