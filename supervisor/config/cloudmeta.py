"""Cloud metadata shaped as config (pure): NoCloud's ``meta-data`` and ``network-config``, OpenStack
ConfigDrive's ``meta_data.json`` and ``network_data.json``.

Each function takes a file's text and the name to give in errors, and returns config keys
(``hostname``, ``ssh_authorized_keys``, ``network``) with the problems found. A problem in metadata is
a warning naming the file and key: the rest of the file still counts (a host keeps its SSH keys when its
network description is odd)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from supervisor.config.errors import DOCUMENT, ConfigError
from supervisor.config.yamlload import load_document

Translated = tuple[dict[str, Any], list[ConfigError]]
"""Config keys, and the problems found (warnings: what they name is left out)."""


# -- NoCloud ---------------------------------------------------------------------------------------------


def metadata_to_config(text: str, source: str) -> Translated:
    """NoCloud/EC2-style meta-data -> config: ``local-hostname`` (else ``hostname``, as cloud-init's
    NoCloud docs write it) -> ``hostname``, ``public-keys`` (a string, a list, or a map of name -> key
    or -> {openssh-key: key}) -> ``ssh_authorized_keys``. ``instance-id`` is read by the datasource's
    journal line; ``network-interfaces`` (Debian ENI text) is not supported: a warning."""
    doc, errors = load_document(text, source)
    if doc is None:
        return {}, errors
    config: dict[str, Any] = {}
    key = "local-hostname" if "local-hostname" in doc.data else "hostname"
    hostname = doc.data.get(key)
    if hostname is not None:
        if isinstance(hostname, str | int) and not isinstance(hostname, bool):
            config["hostname"] = str(hostname)
        else:
            errors.append(ConfigError(source, key, "expected a string", doc.line((key,))))
    keys = doc.data.get("public-keys")
    if keys is not None:
        found = _public_keys(keys)
        if found is None:
            errors.append(
                ConfigError(
                    source,
                    "public-keys",
                    "expected a key, a list of keys or a map of keys",
                    doc.line(("public-keys",)),
                )
            )
        else:
            config["ssh_authorized_keys"] = found
    if "network-interfaces" in doc.data:
        errors.append(ConfigError(source, "network-interfaces", "Debian interfaces(5) text is not "
                                  "supported: ignored (give a network-config file instead)",
                                  doc.line(("network-interfaces",))))
    return config, errors


def instance_id(text: str) -> str | None:
    """``instance-id`` of NoCloud meta-data (for the journal line), or None."""
    doc, _ = load_document(text, "meta-data")
    value = doc.data.get("instance-id") if doc is not None else None
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _public_keys(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value]
    if isinstance(value, dict):
        found: list[str] = []
        for item in value.values():
            if isinstance(item, dict):
                item = item.get("openssh-key")
            sub = _public_keys(item)
            if sub is None:
                return None
            found.extend(sub)
        return found
    return None


def network_config_to_config(text: str, source: str) -> Translated:
    """A NoCloud ``network-config`` file -> ``{"network": ...}``: a netplan v2 document with or without
    its ``network:`` wrapper. ``network: {config: disabled}`` keeps it (the netplan parser reads it)."""
    doc, errors = load_document(text, source)
    if doc is None or not doc.data:
        return {}, errors
    network = doc.data["network"] if set(doc.data) == {"network"} else doc.data
    if not isinstance(network, Mapping):
        return {}, [*errors, ConfigError(source, "network", "expected a map")]
    translated, problems = translate_network_config(dict(network), source)
    if translated is None:
        return {}, [*errors, *problems]
    return {"network": translated}, [*errors, *problems]


def translate_network_config(network: dict[str, Any], source: str
                             ) -> tuple[dict[str, Any] | None, list[ConfigError]]:
    """The hook between cloud-init's network-config and corral's netplan parser: the document goes
    under ``network:`` as it is, version 1 included. The netplan parser (``netconf.netplan``) reads
    version 2 and translates version 1 (``netconf.network_config``), naming each problem on the v1
    entry; this layer (core) may not import the network library, so the translation happens there,
    when the config is checked with the rest."""
    return network, []


# -- OpenStack ConfigDrive -------------------------------------------------------------------------------


def load_json(text: str, source: str) -> tuple[dict[str, Any] | None, list[ConfigError]]:
    """A JSON object, or None with the reason (the text is bounded already: read_config_file)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [ConfigError(source, DOCUMENT, f"not JSON: {exc.msg}", exc.lineno)]
    if not isinstance(data, dict):
        return None, [ConfigError(source, DOCUMENT, "expected a JSON object")]
    return data, []


def openstack_meta_to_config(text: str, source: str) -> tuple[Translated, str | None]:
    """``meta_data.json`` -> config (``hostname``; ``public_keys``, a map of name -> key, ->
    ``ssh_authorized_keys``), and its ``uuid`` (the instance, for the journal line)."""
    data, errors = load_json(text, source)
    if data is None:
        return ({}, errors), None
    config: dict[str, Any] = {}
    hostname = data.get("hostname")
    if isinstance(hostname, str) and hostname:
        config["hostname"] = hostname
    elif hostname is not None:
        errors.append(ConfigError(source, "hostname", "expected a string"))
    keys = data.get("public_keys")
    if keys is not None:
        found = _public_keys(keys)
        if found is None:
            errors.append(ConfigError(source, "public_keys", "expected a map of names to keys"))
        else:
            config["ssh_authorized_keys"] = found
    uuid = data.get("uuid")
    return (config, errors), uuid if isinstance(uuid, str) else None


_PHYSICAL = {None, "phy", "ovs", "vif", "tap", "bridge", "hw_veb", "hyperv", "vhostuser", "macvtap",
             "dvs", "ethernet", "ib_hostdev", "vrouter", "802.1qbh", "802.1qbg", "midonet"}
"""OpenStack link types that are a plain NIC in the guest (nova's VIF types); bonds and VLANs are not
translated yet."""


def network_data_to_config(text: str, source: str) -> Translated:
    """OpenStack ``network_data.json`` -> ``{"network": netplan v2}``: each NIC link (matched by its MAC
    address, with its MTU) with the networks on it (``ipv4``/``ipv6`` static with routes and the
    network's DNS servers, ``ipv4_dhcp``, ``ipv6_dhcp`` and the DHCPv6 kinds), the ``dns`` services as
    every static link's name servers. Bond and VLAN links are warned about and left out."""
    data, errors = load_json(text, source)
    if data is None:
        return {}, errors
    ethernets: dict[str, dict[str, Any]] = {}
    ids: dict[str, str] = {}  # link id -> netplan id
    for i, link in enumerate(_objects(data.get("links"), source, "links", errors)):
        where = f"links[{i}]"
        kind, link_id, mac = link.get("type"), link.get("id"), link.get("ethernet_mac_address")
        if kind not in _PHYSICAL:
            errors.append(ConfigError(source, f"{where}.type", f"{kind!r} links are not supported yet: "
                                      "left out"))
            continue
        if not isinstance(link_id, str) or not isinstance(mac, str):
            errors.append(ConfigError(source, where, "a link needs an id and an ethernet_mac_address"))
            continue
        name = f"nic{len(ethernets)}"
        entry: dict[str, Any] = {"match": {"macaddress": mac.lower()}}
        mtu = link.get("mtu")
        if isinstance(mtu, int) and not isinstance(mtu, bool):
            entry["mtu"] = mtu
        ethernets[name] = entry
        ids[link_id] = name
    dns = [str(s["address"]) for s in _objects(data.get("services"), source, "services", errors)
           if s.get("type") == "dns" and isinstance(s.get("address"), str)]
    for i, net in enumerate(_objects(data.get("networks"), source, "networks", errors)):
        where = f"networks[{i}]"
        nic = ids.get(str(net.get("link")))
        if nic is None:
            errors.append(ConfigError(source, f"{where}.link", f"no NIC link {net.get('link')!r}: left out"))
            continue
        problem = _add_network(ethernets[nic], net, dns)
        if problem:
            errors.append(ConfigError(source, where, problem))
    if not ethernets:
        return {}, errors
    return {"network": {"version": 2, "ethernets": ethernets}}, errors


def _add_network(entry: dict[str, Any], net: Mapping[str, Any], dns: list[str]) -> str | None:
    kind = net.get("type")
    if kind == "ipv4_dhcp":
        entry["dhcp4"] = True
        return None
    if kind in ("ipv6_dhcp", "ipv6_dhcpv6-stateful", "ipv6_dhcpv6-stateless", "ipv6_slaac"):
        entry["dhcp6"] = True
        return None
    if kind not in ("ipv4", "ipv6"):
        return f"network type {kind!r} is not supported: left out"
    try:
        address = ipaddress.ip_interface(f"{net.get('ip_address')}/{_prefix(net.get('netmask'))}")
        routes = [_route(r) for r in net.get("routes") or []]
    except (ValueError, TypeError, AttributeError) as exc:
        return f"not an address, netmask or route: {exc}: left out"
    entry.setdefault("addresses", []).append(str(address))
    if routes:
        entry.setdefault("routes", []).extend(routes)
    servers = [s for s in net.get("dns_nameservers") or [] if isinstance(s, str)] or dns
    if servers:
        known = entry.setdefault("nameservers", {"addresses": []})["addresses"]
        known.extend(s for s in servers if s not in known)
    return None


def _route(route: Mapping[str, Any]) -> dict[str, str]:
    network = ipaddress.ip_network(f"{route['network']}/{_prefix(route['netmask'])}")
    gateway = ipaddress.ip_address(route["gateway"])
    return {"to": "default" if network.prefixlen == 0 else str(network), "via": str(gateway)}


def _prefix(netmask: Any) -> int:
    """A netmask (``255.255.255.0``, ``ffff:ffff::``) or a prefix length as a prefix length."""
    if isinstance(netmask, int) or (isinstance(netmask, str) and netmask.isdigit()):
        return int(netmask)
    bits = int(ipaddress.ip_address(str(netmask)))
    width = 32 if "." in str(netmask) else 128
    length = bin(bits).count("1")
    if bits != ((1 << length) - 1) << (width - length):
        raise ValueError(f"{netmask!r} is not a netmask")
    return length


def _objects(value: Any, source: str, key: str, errors: list[ConfigError]) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        errors.append(ConfigError(source, key, "expected a list of objects: left out"))
        return []
    return value
