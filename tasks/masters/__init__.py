"""Nightly master calibrations of the CCD camera: screening, building, validation, QC history."""
