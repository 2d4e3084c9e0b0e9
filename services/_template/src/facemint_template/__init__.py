"""The template service: a runnable skeleton that a new Facemint service starts from (docs/adding-a-service.md)."""
