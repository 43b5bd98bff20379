"""The board: the ink model, what the board shows, the pen and touch input, PDF export."""
