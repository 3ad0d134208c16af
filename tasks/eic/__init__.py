"""Steps of the ECLAIRs instrument centre: calibration, promotion gate, monitoring.

Each module has one job (``gate`` judges calibration candidates against the current CALDB
file, ``qc_history`` keeps the verdicts, ``gain`` fits channel to energy per pixel,
``thresholds`` the low-threshold table, ``bands`` the on-board energy-band table, ...).
"""
