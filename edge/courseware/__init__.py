"""Courseware on the box: the cache component and what the doors ask of it."""
