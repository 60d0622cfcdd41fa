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

import json
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

# Every pattern runs in time linear in the text, whatever the text (a target's body, a header of
# 8 KB, a 100 KB variable): a scheme starts only where no scheme character precedes it, and
# every repeated part is bounded or possessive, so no start position rescans the text after it.
_SCHEME = r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,31}://"
# scheme://user:password@ masks the password, scheme://token@ the user (a token): one pattern.
_URL_USERINFO = re.compile(
    rf"(?P<head>{_SCHEME})(?P<user>[^/\s:@]{{0,4096}}+)(?::(?P<password>[^@\s/]{{1,4096}}+))?(?=@)"
)
# A query parameter whose name (at most 64 characters) looks secret: the name is checked apart
# (see _query_secrets), since a pattern that searched for the word inside it would backtrack.
_QUERY_PARAM = re.compile(r"(?P<head>[?&#](?P<name>[A-Za-z0-9_.-]{1,64}+)=)(?P<secret>[^&#\s'\"]++)")
# OAuth callbacks carry a one-time `code` and a `state` bound to the session: secrets too, as
# whole names only (`statement=` is not one). A fragment (`#access_token=`) is a query as well.
_QUERY_NAME = re.compile(r"pass|pw|secret|token|key|auth|cred|sig|^(?:code|state)$", re.IGNORECASE)
# A command-line option whose next argument is its value: `--token VALUE`, `--password VALUE`.
_SECRET_OPTION = re.compile(r"^--?[A-Za-z0-9_-]{0,40}(?:pass|pw|secret|token|key|auth|cred)[A-Za-z0-9_-]{0,40}$", re.I)
MAX_JSON_BODY = 64 * 1024  # a request body parsed for secret-named keys; larger ones are not
# Matched in lower case without IGNORECASE, whose scan tries every position (8x slower): the
# text is lowered first where that keeps its length (ASCII), and \b is checked on the match.
_KV_PASSWORD = re.compile(r"(?P<head>(?:password|passwd|pwd|token|secret)\s*+=\s*+)(?P<secret>[^\s&;,'\"]++)")
_KV_PASSWORD_ANY_CASE = re.compile(_KV_PASSWORD.pattern, re.IGNORECASE)
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
        for index, item in enumerate(value):
            if isinstance(item, str) and _SECRET_OPTION.match(item) and index + 1 < len(value):
                following = value[index + 1]
                if isinstance(following, str) and following:
                    found.add(following)  # `--token VALUE` as two arguments
            _walk(item, name, found)
    elif isinstance(value, str) and name == "body" and value.lstrip()[:1] in ("{", "[") and len(value) <= MAX_JSON_BODY:
        # a JSON request body written as text: its secret-named keys hold secrets, as in `json:`
        try:
            document = json.loads(value)
        except ValueError:
            document = None
        if isinstance(document, (dict, list)):
            _walk(_json_strings(document), "json", found)
        _walk(value, "", found)
    elif isinstance(value, str):
        secrets = []
        for match in _URL_USERINFO.finditer(value):
            # A user alone is masked inside URLs by the pattern; as a string to mask everywhere
            # only when it is long enough to be a token (`postgres` is a user name, and also a
            # probe type).
            if match.group("password"):
                secrets.append(match.group("password"))
            elif len(match.group("user")) >= 16:
                secrets.append(match.group("user"))
        secrets += [m.group("secret") for m in _QUERY_PARAM.finditer(value) if _QUERY_NAME.search(m.group("name"))]
        for secret in secrets:
            found.update((secret, urllib.parse.unquote(secret)))


def _json_strings(value: Any, depth: int = 0) -> Any:
    """A parsed JSON body with its scalars as text (a password may be written as a number)."""
    if depth > 32:
        return None
    if isinstance(value, dict):
        return {str(k): _json_strings(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_strings(v, depth + 1) for v in value]
    return value if isinstance(value, str) else None


def _mask(match: re.Match[str]) -> str:
    return match.group("head") + MASK


def _mask_key_values(text: str) -> str:
    """`password=...`, `token: ...`-like pairs in any case, the value masked."""
    pattern, scanned = (_KV_PASSWORD, text.lower()) if text.isascii() else (_KV_PASSWORD_ANY_CASE, text)
    parts, end = [], 0
    for match in pattern.finditer(scanned):
        start = match.start()
        if start and (scanned[start - 1].isalnum() or scanned[start - 1] == "_"):
            continue  # inside a word (`mytoken=`): \b, checked here
        parts += [text[end : match.start("secret")], MASK]
        end = match.end()
    return "".join([*parts, text[end:]]) if parts else text


def _mask_userinfo(match: re.Match[str]) -> str:
    if match.group("password"):
        return f"{match.group('head')}{match.group('user')}:{MASK}"
    return match.group("head") + MASK if match.group("user") else match.group(0)


def _mask_secret_query(match: re.Match[str]) -> str:
    return match.group("head") + MASK if _QUERY_NAME.search(match.group("name")) else match.group(0)


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
        # each pattern only where its anchor is in the text at all: a substring test is a
        # fraction of a regex scan, and most text has no URL or bearer token in it
        if "://" in text and "@" in text:
            text = _URL_USERINFO.sub(_mask_userinfo, text)
        if "=" in text:
            text = _QUERY_PARAM.sub(_mask_secret_query, text)
            text = _mask_key_values(text)
        if "Bearer" in text or "Basic" in text:
            text = _BEARER.sub(_mask, text)
        return text
