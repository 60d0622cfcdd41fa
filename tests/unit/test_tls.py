import ssl
from pathlib import Path

import pytest

from probe_agent.probes.clients.tls import cert_not_after
from tests.helpers.certs import make_cert


@pytest.mark.parametrize("days", [1, 30, 365 * 40])  # 40 years: past 2049, notAfter is a GeneralizedTime
def test_cert_not_after_matches_the_certificate(tmp_path: Path, days: int) -> None:
    cert = make_cert(tmp_path, days_valid=days)
    der = ssl.PEM_cert_to_DER_cert(cert.cert.read_text())
    assert cert_not_after(der) == cert.not_after.timestamp()
