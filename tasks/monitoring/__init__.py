"""Housekeeping monitoring: parameter definitions, limit checks, reports and trends (pure)."""
