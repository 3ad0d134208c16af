"""Instrument simulators that make data with known truth for every pipeline."""
