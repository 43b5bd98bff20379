"""Discovery on the LAN: the box's zeroconf instance, other boxes and courseware peers."""
