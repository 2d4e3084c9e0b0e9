"""Facemint's model tool as a package; ``make_models.py`` beside it is the command line (see ../README.md)."""
