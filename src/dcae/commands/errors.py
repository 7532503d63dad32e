"""Which exceptions are a user's mistakes (one line, status 1) rather than bugs in dcae."""

from __future__ import annotations

from ..errors import DcaeError

# dcae's own errors, and the operating system's answers about files the user named. The tuple
# imports nothing but the errors module, so reporting a mistake can never fail on an import.
USER_ERRORS = (DcaeError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
