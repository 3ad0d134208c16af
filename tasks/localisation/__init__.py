"""Localisation steps: GRM coarse position from the count ratios of its three detectors."""
