"""Astrometric solution against a local reference catalog, and image-to-image alignment."""
