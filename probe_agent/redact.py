"""Keep secrets out of everything the agent emits: metrics, /health, logs, `check` output.

Two nets, both applied by `Redactor.redact`:
1. Known secret strings gathered from the config at load time, because of where
   they come from: password and token fields, sensitive header values, URL
   userinfo (a user alone too: `https://TOKEN@host`), query parameters with
   secret-like names (`?api_key=`, `?sig=`), ${VAR}s whose names look secret,
   values marked secret (tcp `send_secret`, synthetic `secret_variables`) and
   secret-named request data. Expected values (`expect_json`) and labels are
   never secrets, whatever their keys: masking them would hide ordinary text.
2. Patterns, for secrets that reach us inside text we did not write (library
   errors, invalid config): `scheme://user:password@`, `scheme://token@`,
   `password=...` in DSNs, secret-named query parameters, bearer tokens.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
_PATTERNS_ONLY: Redactor | None = None

SENSITIVE_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SENSITIVE_NAME = re.compile(r"pass|pw|secret|token|key|auth|cred|cookie|session|sig", re.IGNORECASE)
# Fields whose dict keys say nothing about their values being secret.
_NOT_SECRET_FIELDS = frozenset({"expect_json", "labels", "thresholds", "extract", "marker", "tags"})

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<secret>[^@\s/]+)(?=@)")
_URL_USER_ONLY = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<secret>[^/\s:@]+)(?=@)")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:[A-Za-z0-9_.-]*(?:pass|pw|secret|token|key|auth|cred|sig)[A-Za-z0-9_.-]*)=)(?P<secret>[^&#\s'\"]+)",
    re.IGNORECASE,
)
_KV_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pwd|token|secret)\s*=\s*)(?P<secret>[^\s&;,'\"]+)", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{8,})")


def is_sensitive_name(name: str) -> bool:
    return name.lower() in SENSITIVE_HEADERS or bool(_SENSITIVE_NAME.search(name))


def collect_secrets(models: Iterable[BaseModel]) -> set[str]:
    found: set[str] = set()
    for model in models:
        _walk(model, "", found)
    # Very short strings would mask innocent text everywhere; they are still caught by the patterns.
    return {s for s in found if len(s) >= 3}


def _walk(value: Any, name: str, found: set[str]) -> None:
    # A module-level function, not a closure: a recursive closure is a reference cycle, one per
    # probe per load, which only the garbage collector frees (and a frozen heap never does).
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, BaseModel):
        for field_name in type(value).model_fields:
            _walk(getattr(value, field_name), field_name, found)
        if getattr(value, "send_secret", False) and getattr(value, "send", None):
            found.add(value.send)  # type: ignore[attr-defined]
            found.update(part for part in value.send.split() if len(part) >= 8)  # type: ignore[attr-defined]
        for variable in getattr(value, "secret_variables", ()):
            found.add(getattr(value, "variables", {}).get(variable, ""))
    elif isinstance(value, dict):
        if name in _NOT_SECRET_FIELDS:
            return
        for key, item in value.items():
            if isinstance(item, str) and is_sensitive_name(str(key)):
                found.add(item)
                # "Bearer abc": the token alone may show up too
                found.update(part for part in item.split() if len(part) >= 8)
            else:
                _walk(item, str(key), found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, name, found)
    elif isinstance(value, str):
        for pattern in (_URL_PASSWORD, _URL_USER_ONLY, _QUERY_SECRET):
            for match in pattern.finditer(value):
                secret = match.group("secret")
                # A user alone is masked inside URLs by the pattern; as a string to mask
                # everywhere only when it is long enough to be a token (`postgres` is a
                # user name, and also a probe type).
                if pattern is _URL_USER_ONLY and len(secret) < 16:
                    continue
                found.update((secret, urllib.parse.unquote(secret)))


MIN_PART = 4  # a shorter piece of a secret would mask ordinary words


class Redactor:
    CACHE_SIZE = 4096

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret that contains another is masked whole. A secret with a line
        # break in it (a token read with its newline, a line-protocol command) comes back from a
        # server, or in a message, without it: its stripped lines are secrets as well.
        variants = {s for s in secrets if s}
        variants |= {line.strip() for s in variants for line in (s, *s.splitlines()) if len(line.strip()) >= MIN_PART}
        self._secrets = sorted(variants, key=len, reverse=True)
        # Probes report the same details and messages run after run: remember the answers.
        self._cache: dict[str, str] = {}

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        """A redactor for these secrets; for none, the one shared pattern-only redactor (most
        probes have no secrets of their own: 10,000 of them need not keep 10,000 caches)."""
        secrets = frozenset(secrets)
        if secrets:
            return cls(secrets)
        global _PATTERNS_ONLY
        if _PATTERNS_ONLY is None:
            _PATTERNS_ONLY = cls()
        return _PATTERNS_ONLY

    def redact(self, text: str) -> str:
        if not text:
            return text
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if len(self._cache) >= self.CACHE_SIZE:
            self._cache.clear()
        redacted = self._cache[text] = self._redact(text)
        return redacted

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        text = _URL_USER_ONLY.sub(lambda m: m.group("head") + MASK, text)
        text = _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, text)
        text = _KV_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
        return _BEARER.sub(lambda m: m.group("head") + MASK, text)
