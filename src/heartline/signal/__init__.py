"""Signal processing: filters, denoising, quality, R-peak detection and beat segmentation.

Imports no torch and no web framework. Every function takes the sampling rate as the explicit
keyword ``fs`` (Hz).
"""
