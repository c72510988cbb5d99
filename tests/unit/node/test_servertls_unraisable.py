"""lb.node.servertls keeps ssl's error for a non-ASCII server name out of stderr, and
only that one: every other unraisable error still reaches the hook there was."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import pytest

from lb.node import servertls


def _unraisable(exc: BaseException, obj: object) -> Any:
    return SimpleNamespace(
        exc_type=type(exc), exc_value=exc, exc_traceback=None, err_msg=None, object=obj
    )


def test_only_the_bad_server_name_error_is_kept_from_the_previous_hook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    monkeypatch.setattr(servertls, "_default_unraisablehook", None)
    servertls._quiet_bad_server_names()
    servertls._quiet_bad_server_names()  # once: not in front of itself
    assert sys.unraisablehook is servertls._quiet_unraisable
    name = b"bad\xffname.test"
    try:
        name.decode("ascii")
    except UnicodeDecodeError as exc:
        bad_name = exc
    sys.unraisablehook(_unraisable(bad_name, name))
    assert seen == []
    others = [
        _unraisable(bad_name, object()),  # the same error about another object
        _unraisable(UnicodeDecodeError("utf-8", name, 3, 4, "invalid"), name),
        _unraisable(ValueError("a callback failed"), name),
    ]
    for other in others:
        sys.unraisablehook(other)
    assert seen == others
