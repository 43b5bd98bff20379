"""Streaming doors: WHEP endpoint for students, WHIP publisher to a cloud SFU, data channels."""
