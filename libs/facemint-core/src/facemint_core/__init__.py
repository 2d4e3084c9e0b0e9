"""Shared runtime of every Facemint service: settings, logging, metrics, health, lifecycle, gRPC, NATS and DB."""

__version__ = "0.1.0"
