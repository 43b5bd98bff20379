"""Web doors: panel, watch, admin and the JSON API on one HTTP port."""
