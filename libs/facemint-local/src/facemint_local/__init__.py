"""The local platform: real servers and every Facemint service as child processes of one supervisor."""
