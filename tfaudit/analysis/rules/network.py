"""Networks opened to the world, rated by port."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tfaudit.analysis.rules._values import Hit, _blocks, _strs
from tfaudit.parse.plan import ResourceChange

WORLD_V4 = "0.0.0.0/0"
WORLD_V6 = "::/0"
_WORLD = frozenset({WORLD_V4, WORLD_V6})
ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
DB_PORTS = {3306: "MySQL", 5432: "PostgreSQL", 1433: "SQL Server", 1521: "Oracle", 6379: "Redis",
            11211: "Memcached", 27017: "MongoDB", 9200: "Elasticsearch", 9042: "Cassandra", 5984: "CouchDB",
            2379: "etcd", 8086: "InfluxDB", 7000: "Cassandra", 9092: "Kafka"}
WEB_PORTS = {80: "HTTP", 443: "HTTPS"}
_ALL_PROTOCOLS = frozenset({"-1", "all", "*", -1})

Exposure = tuple[str, str, int, int]  # (source, protocol, from_port, to_port)


def _port(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def _exposure(source: str, protocol: Any, lo: Any, hi: Any) -> Exposure:
    proto = str(protocol).lower() if protocol is not None else "-1"
    if protocol in _ALL_PROTOCOLS or proto in _ALL_PROTOCOLS:
        return (source, "all", 0, 65535)
    p_lo, p_hi = _port(lo), _port(hi)
    if p_lo is None and p_hi is None:
        return (source, proto, 0, 65535)
    p_lo = p_lo if p_lo is not None else p_hi
    p_hi = p_hi if p_hi is not None else p_lo
    assert p_lo is not None and p_hi is not None
    if p_lo < 0 or p_hi < 0:  # icmp type -1 / "all ports" for a protocol
        return (source, proto, 0, 65535)
    if proto in ("icmp", "1", "icmpv6", "58"):
        return (source, proto, -1, -1)
    return (source, proto, min(p_lo, p_hi), max(p_lo, p_hi))


def _sg_rule_exposures(rule: Mapping[str, Any]) -> Iterator[Exposure]:
    for cidr in (*_strs(rule.get("cidr_blocks")), *_strs(rule.get("ipv6_cidr_blocks"))):
        if cidr in _WORLD:
            yield _exposure(cidr, rule.get("protocol"), rule.get("from_port"), rule.get("to_port"))


def _exposures(rtype: str, values: Any) -> set[Exposure]:
    """World-open ingress of one security group / rule / ACL object."""
    out: set[Exposure] = set()
    if not isinstance(values, dict):
        return out
    if rtype in ("aws_security_group", "aws_default_security_group"):
        for rule in _blocks(values, "ingress"):
            out.update(_sg_rule_exposures(rule))
    elif rtype == "aws_security_group_rule":
        if values.get("type") == "ingress":
            out.update(_sg_rule_exposures(values))
    elif rtype == "aws_vpc_security_group_ingress_rule":
        for key in ("cidr_ipv4", "cidr_ipv6"):
            if values.get(key) in _WORLD:
                out.add(_exposure(values[key], values.get("ip_protocol"), values.get("from_port"), values.get("to_port")))
    elif rtype in ("aws_network_acl", "aws_default_network_acl"):
        for entry in _blocks(values, "ingress"):
            if str(entry.get("action", "")).lower() == "allow":
                for key in ("cidr_block", "ipv6_cidr_block"):
                    if entry.get(key) in _WORLD:
                        out.add(_exposure(entry[key], entry.get("protocol"), entry.get("from_port"), entry.get("to_port")))
    elif rtype == "aws_network_acl_rule":
        if values.get("egress") is not True and str(values.get("rule_action", "")).lower() == "allow":
            for key in ("cidr_block", "ipv6_cidr_block"):
                if values.get(key) in _WORLD:
                    out.add(_exposure(values[key], values.get("protocol"), values.get("from_port"), values.get("to_port")))
    elif rtype == "google_compute_firewall":
        if str(values.get("direction") or "INGRESS").upper() == "INGRESS" and values.get("disabled") is not True:
            sources = [s for s in _strs(values.get("source_ranges")) if s in _WORLD]
            for allow in _blocks(values, "allow"):
                ports = _strs(allow.get("ports"))
                for src in sources:
                    if not ports:
                        out.add(_exposure(src, allow.get("protocol"), None, None))
                    for p in ports:
                        lo, _, hi = p.partition("-")
                        out.add(_exposure(src, allow.get("protocol"), lo, hi or lo))
    elif rtype == "azurerm_network_security_rule":
        if (str(values.get("direction", "")).lower() == "inbound" and str(values.get("access", "")).lower() == "allow"):
            srcs = [*_strs(values.get("source_address_prefix")), *_strs(values.get("source_address_prefixes"))]
            if any(s in ("*", "0.0.0.0/0", "Internet", "::/0", "Any") for s in srcs):
                ranges = [*_strs(values.get("destination_port_range")), *_strs(values.get("destination_port_ranges"))]
                for r in ranges or ["*"]:
                    if r == "*":
                        out.add(_exposure("*", values.get("protocol"), 0, 65535))
                    else:
                        lo, _, hi = r.partition("-")
                        out.add(_exposure("*", values.get("protocol"), lo, hi or lo))
    return out


def _covers(e: Exposure, port: int) -> bool:
    return e[2] <= port <= e[3]


def _describe(e: Exposure) -> str:
    src, proto, lo, hi = e
    if proto == "all":
        return f"all traffic from {src}"
    if lo == -1:
        return f"{proto} from {src}"
    ports = f"port {lo}" if lo == hi else f"ports {lo}-{hi}"
    return f"{proto} {ports} from {src}"


def classify_exposure(e: Exposure) -> tuple[str, str]:
    _, proto, lo, hi = e
    desc = _describe(e)
    if proto == "all" or (lo <= 0 and hi >= 65535):
        return "network.world-ingress-all", f"ingress open to the internet: {desc}"
    if lo == -1:
        return "network.world-ingress", f"ingress open to the internet: {desc}"
    admin = [f"{n} ({p})" for p, n in ADMIN_PORTS.items() if _covers(e, p)]
    if admin:
        return "network.world-ingress-admin", f"ingress open to the internet: {desc}, {', '.join(admin)}"
    db = [f"{n} ({p})" for p, n in DB_PORTS.items() if _covers(e, p)]
    if db:
        return "network.world-ingress-database", f"ingress open to the internet: {desc}, {', '.join(db)}"
    if lo == hi and lo in WEB_PORTS:
        return "network.world-ingress-web", f"ingress open to the internet: {desc} ({WEB_PORTS[lo]})"
    return "network.world-ingress", f"ingress open to the internet: {desc}"


def check_network(ch: ResourceChange) -> Iterator[Hit]:
    if ch.after is None:
        return
    new = _exposures(ch.type, ch.after) - _exposures(ch.type, ch.before)
    for e in sorted(new, key=lambda x: (x[2], x[3], x[1], x[0])):
        yield classify_exposure(e)
