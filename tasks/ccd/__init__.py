"""CCD reduction steps: overscan, combine, master builders and science-frame reduction."""
