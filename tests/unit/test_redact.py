import pytest

from probe_agent.config.loader import parse_config
from probe_agent.core.redact import MASK, Redactor


def test_config_secrets_are_collected_and_masked() -> None:
    config = parse_config(
        """
probes:
  - name: api
    type: http
    url: http://user:url-pass-123@127.0.0.1:1/
    headers: {X-Trace: visible-value}
  - name: bearer
    type: http
    url: http://127.0.0.1:1/
    headers: {Authorization: "Bearer tok-abcdef-123456"}
  - name: other
    type: http
    url: http://127.0.0.1:1/${PATH_PART}
    headers: {X-Api-Key: "${SERVICE_TOKEN}"}
""",
        env={"SERVICE_TOKEN": "env-token-999", "PATH_PART": "health"},
    )
    redactor = Redactor(config.secrets)
    text = "GET http://user:url-pass-123@127.0.0.1:1/ Bearer tok-abcdef-123456 env-token-999 visible-value health"
    out = redactor.redact(text)
    for secret in ("url-pass-123", "tok-abcdef-123456", "env-token-999"):
        assert secret not in out
    assert "visible-value" in out and "health" in out


def test_patterns_catch_secrets_not_in_config() -> None:
    redactor = Redactor()
    assert redactor.redact("postgres://app:hunter2@db:5432/x") == f"postgres://app:{MASK}@db:5432/x"
    assert redactor.redact("host=db password=hunter2 user=app") == f"host=db password={MASK} user=app"
    assert redactor.redact("Authorization: Bearer abcdefgh12345678") == f"Authorization: Bearer {MASK}"
    assert redactor.redact("nothing secret here") == "nothing secret here"


def test_longest_secret_masked_first() -> None:
    assert Redactor(["abc123", "abc123xyz"]).redact("key=abc123xyz") == f"key={MASK}"


def test_a_probes_secret_is_masked_in_its_outputs_not_as_a_word_in_anothers() -> None:
    from probe_agent.config.loader import parse_config
    from probe_agent.runtime.runner import build_handles

    config = parse_config(
        "probes:\n"
        "  - {name: db, type: postgres, host: 127.0.0.1, password: 'admin1234'}\n"
        "  - {name: web, type: http, url: 'http://127.0.0.1:1/', body_contains: 'admin1234'}\n"
        "  - {name: api, type: http, url: 'http://127.0.0.1:1/?api_key=K3y-0f-api', headers: {X-Api-Key: Hdr-Secret-1}}\n",
        env={},
    )
    handles = {h.name: h for h in build_handles(config)}
    assert handles["db"].redactor.redact("password admin1234 rejected") == "password *** rejected"
    assert handles["web"].redactor.redact("body does not contain 'admin1234'") == "body does not contain 'admin1234'"
    assert "K3y-0f-api" not in handles["api"].redactor.redact("echo K3y-0f-api Hdr-Secret-1")
    assert "Hdr-Secret-1" not in handles["api"].redactor.redact("echo K3y-0f-api Hdr-Secret-1")
    # every secret is still in the set the log filter masks with, as the last net
    assert {"admin1234", "K3y-0f-api", "Hdr-Secret-1"} <= config.secrets


def test_collecting_secrets_leaves_no_reference_cycle() -> None:
    """The agent freezes what a load builds out of the garbage collector's reach: a cycle made
    per probe per load (a recursive closure did) would never be freed."""
    import gc

    from probe_agent.config.loader import parse_config
    from probe_agent.core.redact import collect_secrets

    config = parse_config(
        "probes: [{name: a, type: http, url: 'http://u:pw-12345@127.0.0.1:1/', headers: {X-Token: abcdefgh}}]", env={}
    )
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(20):
            collect_secrets(config.probes)
        assert gc.collect() == 0
    finally:
        if enabled:
            gc.enable()


def test_a_secret_with_a_line_break_is_masked_without_it() -> None:
    from probe_agent.core.redact import Redactor

    redact = Redactor({"T0ken-with-newline\r\n", "ab\n"}).redact
    assert redact("-ERR unknown command 'T0ken-with-newline', with args") == "-ERR unknown command '***', with args"
    assert redact("ab is too short to mask alone") == "ab is too short to mask alone"


# Text a target or a config controls, shaped to make a backtracking pattern scan it once per
# character: each took seconds before (0.05 s at 4 KB, 9.1 s at 64 KB), quadratic in its length.
HOSTILE_TEXTS = {
    "letters": "a" * 1_000_000,
    "scheme_like": "a+" * 500_000,
    "query_names": "?" + "pass" * 250_000,
    "ampersand_names": ("&" + "token" * 50) * 4_000,
    "userinfo": "http://" + "a" * 1_000_000,
    "colons": "http://a:" + "b" * 1_000_000,
    "schemes": "a://" * 250_000,
    "keys": "password " * 110_000,
    "bearer": "Bearer " * 140_000,
    "all_anchors": "a+" * 500_000 + "://@=Bearer Basic",
}


@pytest.mark.parametrize("shape", sorted(HOSTILE_TEXTS))
def test_redaction_is_linear_in_hostile_text(shape: str) -> None:
    import time

    text = HOSTILE_TEXTS[shape]
    redactor = Redactor(["s3cret-value", "another-secret"])
    started = time.process_time()
    redactor.redact(text)
    assert time.process_time() - started < 0.05 * 4, f"{shape}: {time.process_time() - started:.2f}s for 1 MB"


def test_bounded_patterns_still_mask_long_secrets() -> None:
    token = "t" * 2000
    assert Redactor().redact(f"https://user:{token}@host/ and ?access_token={token}&x=1") == (
        "https://user:***@host/ and ?access_token=***&x=1"
    )
    assert Redactor().redact("PassWord = x1 mytoken=abc TOKEN=t9 https://ghp_0123456789abcdef@h") == (
        "PassWord = *** mytoken=abc TOKEN=*** https://***@h"
    )


def test_secret_forms_that_leaked_before() -> None:
    config = parse_config(
        """
probes:
  - {name: frag, type: http, url: "https://app.internal/cb#access_token=fragm3nt-t0ken-value&x=1"}
  - {name: oauth, type: http, url: "https://app.internal/cb?code=0ne-time-c0de-123&state=st4te-b0und-v4lue"}
  - name: body
    type: http
    url: https://app.internal/login
    method: POST
    body: '{"user": "probe", "password": "b0dy-passw0rd-9", "nested": {"api_key": "n3sted-k3y-77"}}'
  - name: hook
    type: tcp
    host: 127.0.0.1
    port: 1
    remediation:
      actions:
        - {name: flush, command: [/bin/flush, --token, arg-t0ken-v4lue-1, --statement, keep-this]}
""",
        env={},
    )
    text = (
        "GET /cb#access_token=fragm3nt-t0ken-value code 0ne-time-c0de-123 st4te-b0und-v4lue "
        "b0dy-passw0rd-9 n3sted-k3y-77 arg-t0ken-v4lue-1 keep-this statement=fine"
    )
    redacted = Redactor(config.secrets).redact(text)
    for secret in (
        "fragm3nt-t0ken-value",
        "0ne-time-c0de-123",
        "st4te-b0und-v4lue",
        "b0dy-passw0rd-9",
        "n3sted-k3y-77",
        "arg-t0ken-v4lue-1",
    ):
        assert secret not in redacted, (secret, redacted)
    assert "keep-this" in redacted and "statement=fine" in redacted
    # and the patterns alone, on text no config announced
    assert Redactor().redact("https://x/cb#access_token=abc123&y=1 ?code=zz9&state=qq8") == (
        "https://x/cb#access_token=***&y=1 ?code=***&state=***"
    )
