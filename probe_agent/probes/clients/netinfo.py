"""What a probe run learns about its connection, under blackbox_exporter's names: the TLS
version and certificate, and the address it reached. Shared by the http and tcp types."""

from __future__ import annotations

import functools
import ipaddress
import ssl
import time

from probe_agent.core.results import Observation, ValueSpec
from probe_agent.probes.clients.tls import HandshakeClock, cert_labels, cert_not_after, tls_version_label

TLS_VALUES = {
    "ssl_earliest_cert_expiry": ValueSpec(
        "probe_ssl_earliest_cert_expiry", "Returns last SSL chain expiry in unixtime."
    ),
    "ssl_last_chain_expiry": ValueSpec(
        "probe_ssl_last_chain_expiry_timestamp_seconds", "Returns last SSL chain expiry in timestamp."
    ),
    "tls_version": ValueSpec(
        "probe_tls_version_info", "Returns the TLS version used or NaN when unknown.", ("version",)
    ),
    "ssl_chain": ValueSpec(
        "probe_ssl_last_chain_info",
        "Contains SSL leaf certificate information.",
        ("fingerprint_sha256", "subject", "issuer", "subjectalternative"),
    ),
    "cert_expiry_days": ValueSpec(None, "Days until the server certificate expires (for thresholds)."),
}

ADDRESS_VALUES = {
    "dns_lookup_seconds": ValueSpec(
        "probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds."
    ),
    "ip_protocol": ValueSpec("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6."),
    "ip_addr_hash": ValueSpec(
        "probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect if the IP address changes."
    ),
}


def record_tls(clock: HandshakeClock, obs: Observation) -> None:
    """The TLS values of a completed handshake; nothing when there was none (or it failed)."""
    if (expiry := clock.cert_expiry()) is None:
        return
    obs.values["ssl_earliest_cert_expiry"] = expiry
    # Python before 3.13 gives the peer's certificate, not its chain: the leaf stands for it
    obs.values["ssl_last_chain_expiry"] = expiry
    obs.values["cert_expiry_days"] = round((expiry - time.time()) / 86400, 3)
    if clock.version:
        obs.values["tls_version"] = 1.0
        obs.value_labels["tls_version"] = {"version": tls_version_label(clock.version)}
    if clock.peer_cert:
        obs.values["ssl_chain"] = 1.0
        obs.value_labels["ssl_chain"] = cert_labels(clock.peer_cert)


def describe_certificate(der: bytes) -> str:
    """'subject CN=shop, issuer CN=Internal CA, expires 2026-12-01 12:00:00 UTC (8 days)'."""
    import datetime as dt

    labels = cert_labels(der)
    expiry = cert_not_after(der)
    days = (expiry - time.time()) / 86400
    when = dt.datetime.fromtimestamp(expiry, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    state = f"expired {-days:.0f} days ago" if days < 0 else f"{days:.0f} days left"
    return (
        f"subject {labels['subject']}, issuer {labels['issuer']}, names {labels['subjectalternative'] or '-'}, "
        f"expires {when} ({state})"
    )


async def unverified_certificate(host: str, port: int, server_name: str | None = None) -> bytes | None:
    """The certificate a server presents, fetched without verifying it: for a trace, to say what
    a certificate that failed verification was (its expiry date, its names)."""
    import asyncio

    from probe_agent.probes.clients.tls import client_context

    try:
        _reader, writer = await asyncio.open_connection(
            host, port, ssl=client_context(verify=False), server_hostname=server_name or host
        )
    except (OSError, ssl.SSLError):
        return None
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    finally:
        writer.transport.abort()


def record_address(address: str | None, obs: Observation) -> None:
    """probe_ip_protocol and probe_ip_addr_hash of the address reached (None: not known)."""
    if address is None:
        return
    obs.values["ip_protocol"], obs.values["ip_addr_hash"] = _address_values(address)


@functools.lru_cache(maxsize=1024)  # every run of a probe reaches the same few addresses
def _address_values(address: str) -> tuple[float, float]:
    packed = ipaddress.ip_address(address.split("%")[0]).packed
    return 6.0 if len(packed) == 16 else 4.0, float(fnv32a(packed))


def literal_address(host: str) -> str | None:
    """The host if it is an IP address (nothing to resolve), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def fnv32a(data: bytes) -> int:
    """32-bit FNV-1a, as blackbox_exporter hashes the address's bytes for probe_ip_addr_hash."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value
