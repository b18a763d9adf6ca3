"""The secrets inside recipients' Apprise URLs: where they come from and how they never leave.

A recipient's URL names a secret as `${NAME}` (config.yaml is often shared, pasted into a forum
post or kept in git; a password written into it would leave the building with it). The value
comes from the environment or from `notifications.secrets_file` (`NAME=value` lines, the
environment wins). Every text this package shows — log lines, the status screen, the REST view,
an error — first goes through `SecretBook.mask`, which replaces every secret value (as written
and URL-encoded) with `****`; the URLs themselves are shown as Apprise's privacy mode prints them.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from urllib.parse import quote

from bevforge.config import SECRET_REFERENCE

MASK = "****"
_REFERENCE = re.compile(SECRET_REFERENCE)


class MissingSecret(Exception):
    """A `${NAME}` that neither the environment nor the secrets file defines (the message names only NAME)."""


def read_secrets_file(path: str | None) -> tuple[dict[str, str], str | None]:
    """`NAME=value` lines of the secrets file (blank lines and `#` comments skipped), and a problem if
    it cannot be read. The problem names the file, never a value."""
    if path is None:
        return {}, None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"notifications.secrets_file: cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8'}"
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values, None


class SecretBook:
    """The secrets the URLs use, resolved once at start, and the mask every shown text passes through."""

    def __init__(self, file_values: dict[str, str] | None = None) -> None:
        self._file = dict(file_values or {})
        self._used: set[str] = set()  # the values substituted into a URL: the ones to mask
        for value in self._file.values():
            self._note(value)

    def _note(self, value: str) -> None:
        if value:
            self._used.update({value, quote(value, safe=""), quote(value)})

    def resolve(self, url: str) -> str:
        """`url` with each `${NAME}` replaced by its value; MissingSecret when one is defined nowhere."""
        def value_of(match: re.Match[str]) -> str:
            name = match.group(1)
            value = os.environ.get(name, self._file.get(name))
            if value is None:
                raise MissingSecret(f"${{{name}}} is set neither in the environment nor in the secrets file")
            self._note(value)
            return value

        return _REFERENCE.sub(value_of, url)

    def mask(self, text: str) -> str:
        """`text` with every secret value replaced by ****, longest first (one secret inside another)."""
        for value in sorted(self._used, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text


class MaskingFilter(logging.Filter):
    """Put on the `apprise` logger while notifications run: a line a plugin logs (a server's answer, a URL)
    reaches the log with the secrets masked."""

    def __init__(self, book: SecretBook) -> None:
        super().__init__()
        self.book = book

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a plugin's broken format string: keep the raw text, masked
            message = str(record.msg)
        if record.exc_info:  # a traceback may quote a URL too: format it now, masked
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        masked = self.book.mask(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True
