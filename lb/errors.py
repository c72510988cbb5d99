"""The one exception tree of lb.

Every error lb raises on purpose derives from LbError, so callers at the I/O
edge can contain them with one except clause. This module imports nothing of
lb and does no I/O.
"""

from __future__ import annotations


class LbError(Exception):
    """Root of every error lb raises on purpose."""


class FrameError(LbError):
    """A link frame that violates docs/protocol.md (bad version, type, length...).

    The link that carried it is closed and its flows are reset; the node runs on.
    """


class HttpError(LbError):
    """A client request head that cannot be served, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class ConfigError(LbError):
    """A configuration that cannot be used; lists every problem by key."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors)
        lines = "\n".join(f"  {key}: {message}" for key, message in self.errors)
        super().__init__(f"{len(self.errors)} configuration error(s):\n{lines}")


class ExtractorError(LbError):
    """An extractor failed (bad options at build time, or a plugin raised at run time)."""


class ExtractorAnswerError(ExtractorError):
    """An extractor returned something that is neither an Identifier nor a Verdict.

    Its message is lb's own (the extractor's name and the type it returned, never a
    byte of the request), so a node may log it where it logs only the type of an
    exception an extractor raised."""


class TableFull(LbError):
    """The pending/forward tables hold their maximum number of flows."""


class LinkError(LbError):
    """A link to a peer node could not be used (not connected, closed, not authenticated)."""


class LinkAuthError(LinkError):
    """A link login failed: another farm, not a member, a bad proof, or too slow."""


class TlsError(LbError):
    """TLS bytes that cannot be a ClientHello/ServerHello (bad record, bad lengths...)."""


class ProxyHeaderError(LbError):
    """Bytes that cannot be a PROXY protocol v2 header (bad signature, family, lengths...).

    A connection from a listed front balancer that does not start with a valid
    header is closed.
    """
