"""Source extraction, PSF modelling, aperture/PSF photometry, zero point, stacking (GP1)."""
