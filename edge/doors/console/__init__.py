"""The technician's console: the engine, its commands and the door that serves it."""
