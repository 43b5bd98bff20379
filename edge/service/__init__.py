"""The service layer: every operation a door may ask for, behind one `Box` facade.

Doors (web panel, watch page, admin page, serial console) call only `Box`; none has behaviour of its
own. One module per concern: lessons, viewers, recordings, courseware, devices, settings, accounts,
health (and media, what the viewers and the recorder share). The daemon wires the components in as
typed attributes of `Box`; what the service layer asks of each is a Protocol beside its concern, so
nothing here imports a component and nothing looks one up by name.
"""

from __future__ import annotations

from edge.service.facade import Box
from edge.service.lessons import Lesson

__all__ = ["Box", "Lesson"]
