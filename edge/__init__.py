"""The classbox daemon: composition, service layer, media and the four doors."""

__version__ = "0.1.0"
