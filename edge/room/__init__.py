"""The room's devices for the teacher: the PTZ camera's presets and the board display."""
