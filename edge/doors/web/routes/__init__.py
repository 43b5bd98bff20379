"""The web door's routes, one module per page or API."""
