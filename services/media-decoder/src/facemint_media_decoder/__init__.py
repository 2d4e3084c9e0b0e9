"""Facemint media-decoder: fetches media safely, decodes and samples frames, and streams them to inference."""
