"""Masking secrets for display: the one function every command's output goes through.

A value is masked when its key looks secret (``password``, ``api_token``,
``aws_secret_access_key``...), at any depth of a configuration, run ``config``,
step ``parameters``, logged metadata or an event's ``Metadata.extra``; and any
string, whatever its key, has the credentials of the URIs it holds masked:
``postgresql://ml:pw@db/x`` shows as ``postgresql://ml:********@db/x``, and so
do secret-looking query parameters (``?password=``, ``&sig=``).

Display only: the log stores every value as given, and exports keep them all.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "SECRET_KEY", "looks_secret", "mask_secrets", "mask_uri_credentials"]

#: What a masked value shows as.
MASK = "********"
#: Keys that look like they hold a secret. Step parameters and metadata use words
#: that merely contain one ("author", "num_passes", "max_tokens", "tokenizer"):
#: those stay visible; "authorization", "db_pass" and "hf_token" do not.
SECRET_KEY = re.compile(
    r"password|passwd|passphrase|(?<![a-z])pass(?![a-z])|secret|token(?!s|i[sz])|"
    r"api[_-]?key|credential|private[_-]?key|auth(?!or(?!i[sz]))|access[_-]?key|signature",
    re.IGNORECASE,
)
# scheme://user:password@host: the password runs to the netloc's last "@".
_URI_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*:)[^/?#\s]*@")
# A query parameter inside a URI: ?key=value or &key=value.
_QUERY_PARAMETER = re.compile(r"(?P<head>[?&;](?P<key>[^=&#\s]+)=)(?P<value>[^&#\s]*)")
# Query parameters that hold a secret though their names do not say so (Azure SAS).
_SECRET_PARAMETERS = frozenset({"sig"})


def looks_secret(key: str) -> bool:
    """Whether a key names a value to mask."""
    return bool(SECRET_KEY.search(key))


def _mask_parameter(match: re.Match[str]) -> str:
    key = match.group("key")
    if match.group("value") and (looks_secret(key) or key.lower() in _SECRET_PARAMETERS):
        return match.group("head") + MASK
    return match.group(0)


def mask_uri_credentials(text: str) -> str:
    """``text`` with the password and secret query parameters of every URI in it masked."""
    if "://" not in text:
        return text
    masked = _URI_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    return _QUERY_PARAMETER.sub(_mask_parameter, masked)


def mask_secrets(values: Any, *, show: bool = False) -> Any:
    """A copy of ``values`` with secrets masked (recursively); ``values`` itself if ``show``.

    Mappings: the value of a secret-looking key is masked whole (unless empty);
    strings: URI credentials are masked; lists and tuples: each item.
    """
    if show:
        return values
    if isinstance(values, dict):
        return {
            key: MASK
            if isinstance(key, str) and looks_secret(key) and values[key] not in (None, "")
            else mask_secrets(values[key])
            for key in values
        }
    if isinstance(values, list | tuple):
        return [mask_secrets(item) for item in values]
    if isinstance(values, str):
        return mask_uri_credentials(values)
    return values
