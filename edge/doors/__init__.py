"""The doors people use: the web door (panel, watch, board, admin) and the technician's console."""
