"""MXT X-ray steps: PSF, event merging and calibration, two-stage source detection, products."""
