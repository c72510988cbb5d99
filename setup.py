"""lb's build: pure Python by default; with LB_COMPILE=1, mypyc compiles the per-request path.

The metadata is in pyproject.toml. A compiled build needs mypy (mypyc) and a C
compiler where it builds, so it never happens by surprise:

    LB_COMPILE=1 .venv/bin/python setup.py build_ext --inplace   # a source checkout
    bash scripts/compile.sh [--clean]                            # the same, or undo it
    LB_COMPILE=1 pip wheel --no-build-isolation .                # a compiled wheel

The compiled modules are the same source (mypy --strict checks it): an HTTP
exchange costs about 40 % fewer instructions (BENCHMARKS.md). `lb --version` says
which build runs.
"""

from __future__ import annotations

import os

from setuptools import Extension, setup

# The modules every HTTP request runs through, and the link protocol every forwarded
# one crosses (lb.wire.frames, lb.link). Each is pure per lb's layers except the
# node ones (lb.node: the per-request drivers, and the home's connection to its
# application, lb.node.splice), whose classes are asyncio protocols by their methods,
# not by subclassing asyncio.Protocol, so they compile to native classes.
# A compiled function checks its arguments' types at the call: a module whose API
# promises an answer for wrongly typed values (lb.routing.cookie: verify(None) is None)
# stays pure Python, and so does the plugin API (lb.extract.api: plugins may subclass
# its classes, Extractor included, which an interpreted class cannot do to a compiled one).
COMPILED = [
    "lb/wire/http.py",
    "lb/wire/http1.py",
    "lb/wire/response_head.py",
    "lb/wire/forwarded.py",
    "lb/extract/builtin.py",
    "lb/extract/chain.py",
    "lb/extract/seen.py",
    "lb/extract/verifier.py",
    "lb/routing/route.py",
    "lb/routing/tables.py",
    "lb/routing/view.py",
    "lb/routing/keyring_slot.py",
    "lb/clock.py",
    "lb/node/http_state.py",
    "lb/node/http_response.py",
    "lb/node/http_client.py",
    "lb/node/entry_http.py",
    "lb/node/entry.py",
    "lb/node/upstream.py",
    "lb/node/service.py",
    "lb/node/peerlink.py",
    "lb/node/splice.py",
    "lb/node/timer.py",
    "lb/wire/frames.py",
    "lb/link/events.py",
    "lb/link/connection.py",
]


def ext_modules() -> list[object]:
    if os.environ.get("LB_COMPILE", "") != "1":
        return []
    from mypyc.build import mypycify  # mypy in the build environment (--no-build-isolation)

    # one shared library inside the package (lb/_compiled__mypyc...so), not at top level;
    # and the C quick pass of HTTP heads (lb.wire.http, lb.wire.response_head use it
    # when it is there, their regexes when it is not)
    headscan = Extension("lb.wire._headscan", ["lb/wire/_headscan.c"], extra_compile_args=["-O2"])
    return [*mypycify(COMPILED, opt_level="3", group_name="lb._compiled"), headscan]


setup(ext_modules=ext_modules())
