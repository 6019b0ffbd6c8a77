"""How far a listening address reaches: the exposure of a server bound to it.

- `loopback`: 127.0.0.0/8 or ::1: this machine only (not a finding);
- `all-interfaces`: 0.0.0.0 or :: (every address of the namespace, the LAN's included);
- `lan`: one address of an ordinary interface of the host's namespace;
- `container-bridge`: an address of a container or VM bridge (docker0, br-*, virbr*, cni*, podman*), or any
  address inside another network namespace (a container's, reached through its bridge or veth).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping

import psutil

LOOPBACK, ALL_INTERFACES, LAN, CONTAINER_BRIDGE = "loopback", "all-interfaces", "lan", "container-bridge"
BRIDGE_INTERFACES = ("docker*", "br-*", "virbr*", "cni*", "podman*", "lxcbr*", "lxdbr*", "veth*", "flannel*")


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def interface_of(address: str, interfaces: Mapping[str, list[str]]) -> str | None:
    """The interface holding `address` (interfaces: name -> its addresses), or None."""
    ip = _ip(address)
    for name, addresses in interfaces.items():
        if any(_ip(a) == ip for a in addresses):
            return name
    return None


def host_interfaces() -> dict[str, list[str]]:
    """The host namespace's interfaces and their IP addresses (the agent's own namespace)."""
    return {name: [a.address for a in addrs if a.family.name in ("AF_INET", "AF_INET6")]
            for name, addrs in psutil.net_if_addrs().items()}


def reach(address: str, *, host_namespace: bool, interfaces: Mapping[str, list[str]]) -> str:
    ip = _ip(address)
    if ip is not None and ip.is_loopback:
        return LOOPBACK
    if not host_namespace:
        return CONTAINER_BRIDGE
    if ip is None or ip.is_unspecified:
        return ALL_INTERFACES
    name = interface_of(address, interfaces)
    if name is not None and any(fnmatch.fnmatchcase(name, glob) for glob in BRIDGE_INTERFACES):
        return CONTAINER_BRIDGE
    return LAN
