"""Prefect flows: one module per pipeline, @flow functions only (no maths)."""
