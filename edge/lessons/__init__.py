"""Lessons: the lesson state machine, join links, the timetable and its calendar feeds."""
