"""The one error hierarchy of the core: typed errors with code constants, and no HTTP in sight.

Domain code raises these; each transport has exactly one translator (REST: `api/errors.py` maps
the class to a status and the `{error, message, field}` body; `/ws` an `{"type":"error",...}`
frame; SSE and the screens likewise). A new error is a subclass here (or a new `code` on an
existing class), never an inline string in a handler.

Why classes and codes both: the class says what kind of failure it is (and so the HTTP status a
REST client sees), the code says exactly which one, for a client to branch on.
"""

from __future__ import annotations

from typing import Any

# -- codes a client can branch on (the `error` field of every answer) ---------------------------
INVALID_REQUEST = "invalid_request"
INVALID_JSON = "invalid_json"
INVALID_VALUE = "invalid_value"
INVALID_TIMESTAMP = "invalid_timestamp"
INVALID_QUALITY = "invalid_quality"
INVALID_ENDPOINT_ID = "invalid_endpoint_id"
INVALID_LAST_EVENT_ID = "invalid_last_event_id"
MISSING_FIELD = "missing_field"
UNKNOWN_FIELD = "unknown_field"
OUT_OF_RANGE = "out_of_range"
UNKNOWN_CHANNEL = "unknown_channel"
UNKNOWN_ENDPOINT = "unknown_endpoint"
UNKNOWN_ALARM = "unknown_alarm"
UNKNOWN_ALARM_DEFINITION = "unknown_alarm_definition"
UNKNOWN_COMMAND = "unknown_command"
UNKNOWN_CONTROLLER = "unknown_controller"
UNKNOWN_UNIT = "unknown_unit"  # a program unit (programs.units)
UNKNOWN_TEMPLATE = "unknown_template"  # a program template, or one of another unit
INVALID_RECIPE = "invalid_recipe"  # a recipe file that cannot be read: `field` names the element
UNSUPPORTED_RECIPE = "unsupported_recipe"  # a recipe format, version or step the importer does not take
UNKNOWN_RECIPE = "unknown_recipe"  # a recipe draft id
UNKNOWN_BATCH = "unknown_batch"  # a batch record (or one of a unit the caller may not see)
UNKNOWN_TOKEN = "unknown_token"
UNKNOWN_USER = "unknown_user"
UNKNOWN_RECIPIENT = "unknown_recipient"  # a notifications recipient (notifications.recipients)
UNKNOWN_SITE = "unknown_site"  # a site that does not forward to this central panel
NOT_FOUND = "not_found"
UNAUTHORIZED = "unauthorized"
FORBIDDEN = "forbidden"
CSRF_REJECTED = "csrf_rejected"
UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
NOT_ALLOWED_NOW = "not_allowed_now"
NOT_INGESTABLE = "not_ingestable"  # a reading for an endpoint its device owns
ALREADY_SET_UP = "already_set_up"
CONFLICT = "conflict"
COMMAND_ID_IN_USE = "command_id_in_use"
TOO_LARGE = "too_large"
TOO_MANY_REQUESTS = "too_many_requests"
TOO_MANY_STREAMS = "too_many_streams"
STORE_UNAVAILABLE = "store_unavailable"
UNAVAILABLE = "unavailable"
SITE_UNREACHABLE = "site_unreachable"  # a central panel's action on a site's alarm: the site cannot be reached now
INTERNAL_ERROR = "internal_error"
METHOD_NOT_ALLOWED = "method_not_allowed"
HTTP_ERROR = "http_error"
# commands
NOT_WRITABLE = "not_writable"
INVALID_COMMAND_ID = "invalid_command_id"
BLOCKED = "blocked"
# the live protocol (/ws, SSE)
INVALID_MESSAGE = "invalid_message"
INVALID_FIELD = "invalid_field"
UNKNOWN_TYPE = "unknown_type"
TOO_MANY_SUBSCRIPTIONS = "too_many_subscriptions"
RATE_LIMITED = "rate_limited"
ALREADY_AUTHENTICATED = "already_authenticated"
AUTH_REQUIRED = "auth_required"
AUTH_TIMEOUT = "auth_timeout"
FORBIDDEN_ORIGIN = "forbidden_origin"
TOO_SLOW = "too_slow"
# users, tokens and sign-in
INVALID_ROLE = "invalid_role"
INVALID_USERNAME = "invalid_username"
INVALID_PASSWORD = "invalid_password"
WEAK_PASSWORD = "weak_password"
INVALID_NAME = "invalid_name"
UNKNOWN_NODE = "unknown_node"
USER_EXISTS = "user_exists"
BAD_CREDENTIALS = "bad_credentials"
TOO_MANY_ATTEMPTS = "too_many_attempts"
PASSWORD_MISMATCH = "mismatch"
# live config reload (bevforge/reload.py)
CONFIG_INVALID = "config_invalid"  # the file fails the start-up checks: nothing changed
NEEDS_RESTART = "needs_restart"  # a changed key cannot be applied live: nothing changed
RELOAD_FAILED = "reload_failed"  # a removed output could not be put safe first: nothing else changed
NO_CONFIG_FILE = "no_config_file"  # this server was built from a config object, not a file


class BevForgeError(Exception):
    """Base of every error a user may see. `field` names the request field at fault (dotted path)."""

    code: str = INTERNAL_ERROR

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 retry_after_s: float | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field
        self.retry_after_s = retry_after_s  # when a retry may succeed (a cap, a store coming back): Retry-After
        self.extra = extra


class Invalid(BevForgeError):
    """The request is well-formed but a value in it is wrong (REST 422)."""

    code = INVALID_REQUEST


class Malformed(BevForgeError):
    """The request cannot be parsed at all (REST 400)."""

    code = INVALID_JSON


class Unauthorized(BevForgeError):
    """Nobody is signed in, or the credential is not valid (REST 401)."""

    code = UNAUTHORIZED


class Forbidden(BevForgeError):
    """Signed in, but this actor may not do this (REST 403)."""

    code = FORBIDDEN


class NotFound(BevForgeError):
    """No such thing, or none this actor may see: the two look the same on purpose (REST 404)."""

    code = NOT_FOUND


class Conflict(BevForgeError):
    """Not allowed in the present state (REST 409): e.g. acknowledging an alarm that is normal."""

    code = NOT_ALLOWED_NOW


class UnsupportedMedia(BevForgeError):
    """The body is not of a type this route takes (REST 415): the API takes JSON bodies only."""

    code = UNSUPPORTED_MEDIA_TYPE


class TooLarge(BevForgeError):
    """The request or batch is over a documented limit (REST 413)."""

    code = TOO_LARGE


class TooManyRequests(BevForgeError):
    """Over a rate or connection cap (REST 429, `/ws` close 1013); `retry_after_s` says when to retry."""

    code = TOO_MANY_REQUESTS


class Unavailable(BevForgeError):
    """A part the request needs is not working now (REST 503): e.g. the store cannot be written."""

    code = UNAVAILABLE
