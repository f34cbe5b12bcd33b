"""The docker-bridge preset's namespaces by role, a closed set front ends compare a trace's
``ns`` with; a module of its own so that naming a role does not load the world."""

from __future__ import annotations

from enum import StrEnum


class NsRole(StrEnum):
    """The preset's namespaces by role; each value is the namespace's name (further containers
    are ``ctr2``, ``ctr3``, ...: :func:`sim.topology.docker_bridge.container_name`). The
    namespaces are named with the plain values, so a trace's ``ns`` stays a ``str``."""

    HOST = "host"
    CONTAINER = "ctr"
    REMOTE = "remote"
