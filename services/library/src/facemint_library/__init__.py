"""Facemint library service: face libraries, persons, reference faces, 1:N search and 1:1 compare."""
