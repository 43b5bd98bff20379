"""Recording: the recorder, its segments, the catalogue, disk policy, recordings for the doors, uploads."""
