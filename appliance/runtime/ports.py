"""The instance port pool.

The Control DB knows which ports it has assigned; the host may have other listeners it
knows nothing about (another service, a leftover Postgres). A port is free only when it is
in neither set, so we also try to bind it.
"""
from __future__ import annotations

import errno
import socket

from appliance.errors import Conflict, InvalidArgument


class PortsExhausted(Conflict):
    """Every port of the pool is assigned or in use; retrying later may succeed."""


class PortPool:
    def __init__(self, low: int, high: int):
        for value in (low, high):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
                raise InvalidArgument(f"port pool bounds must be integers in 1-65535, got {value!r}")
        if low > high:
            raise InvalidArgument(f"port pool is empty: low {low} > high {high}")
        self.low = low
        self.high = high

    def __contains__(self, port: int) -> bool:
        return self.low <= port <= self.high

    def first_free(self, taken: set[int], host: str) -> int:
        """The lowest port not in ``taken`` that nothing on ``host`` listens on.

        Binding is only a probe: something may grab the port before Postgres does, so a
        caller whose start fails with "address in use" should pick again.
        """
        for port in range(self.low, self.high + 1):
            if port not in taken and port_is_bindable(host, port):
                return port
        assigned = len(taken & set(range(self.low, self.high + 1)))
        raise PortsExhausted(
            f"no free port in {self.low}-{self.high} on {host}: "
            f"{assigned} assigned to instances, the rest in use by other processes",
            {"low": self.low, "high": self.high, "assigned": assigned},
        )


def port_is_bindable(host: str, port: int) -> bool:
    """Whether a TCP listener could bind ``host:port`` now, for every address ``host`` names.

    SO_REUSEADDR matches what Postgres sets, so ports held only by TIME_WAIT connections
    count as free, while any listener (including a wildcard one) counts as taken.
    """
    wildcard = host in ("", "*")
    try:
        infos = socket.getaddrinfo(None if wildcard else host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidArgument(f"cannot resolve listen host {host!r}: {exc.strerror}") from None
    for family, socktype, proto, _, address in infos:
        with socket.socket(family, socktype, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                if exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    continue  # no IPv6 on this host: the v4 probe decides
                raise
    return True


def ephemeral_port(host: str = "127.0.0.1") -> int:
    """A port the kernel says is free now, for a build cluster that must listen on TCP (a
    JDBC client cannot use the socket); not from the instance pool, which is for handing out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]
