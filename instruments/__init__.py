"""Instrument models the analysis needs: geometry, attitude, masks, detector and response models.

This layer sits below products, calibration and tasks: the simulator imports it to draw
events, the analysis to fold spectra and localise, so the two share one model of each
instrument (ARCHITECTURE.md §11). Numbers come from instrument definitions or CALDB files;
nothing here reads or writes product files.
"""
