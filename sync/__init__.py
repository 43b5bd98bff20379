"""Everything that crosses the WAN or the disk cache: courseware store, pull, push, budget."""
