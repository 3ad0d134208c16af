"""Calibration: the CALDB (index, selection, registration, client) and calibration builders."""
