"""The port pool skips ports the Control DB assigned and ports something else listens on."""
from __future__ import annotations

import socket

import pytest

from appliance.errors import Conflict, InvalidArgument
from appliance.runtime.ports import PortPool, PortsExhausted


def _listener(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen()
    return sock


def test_first_free_skips_ports_already_assigned():
    with _listener() as held:  # borrow a port number the kernel just proved free
        base = held.getsockname()[1]
    pool = PortPool(base, base + 20)
    taken = {base, base + 1}
    port = pool.first_free(taken, "127.0.0.1")
    assert port in pool and port not in taken


def test_first_free_skips_a_port_another_process_listens_on():
    with _listener() as held:
        port = held.getsockname()[1]
        with pytest.raises(PortsExhausted):
            PortPool(port, port).first_free(set(), "127.0.0.1")


def test_a_wildcard_listener_makes_the_port_busy_on_loopback():
    with _listener("0.0.0.0") as held:
        port = held.getsockname()[1]
        with pytest.raises(PortsExhausted):
            PortPool(port, port).first_free(set(), "127.0.0.1")


def test_a_port_becomes_free_again_once_its_listener_closes():
    with _listener() as held:
        port = held.getsockname()[1]
    assert PortPool(port, port).first_free(set(), "127.0.0.1") == port


def test_an_exhausted_pool_is_a_conflict_with_a_clear_message():
    pool = PortPool(26990, 26992)
    with pytest.raises(Conflict, match=r"no free port in 26990-26992 on 127\.0\.0\.1: 3 assigned"):
        pool.first_free({26990, 26991, 26992}, "127.0.0.1")


def test_an_inverted_pool_is_rejected():
    with pytest.raises(InvalidArgument):
        PortPool(7000, 6000)
