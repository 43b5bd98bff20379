"""Media: capture -> encode once per layer -> fan out packets to viewers and the recorder."""
