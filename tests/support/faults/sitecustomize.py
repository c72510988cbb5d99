"""Fault injection into a real node process, for tests of how a node contains a bug.

A node started with this directory first on PYTHONPATH imports this module at
start-up (Python's `sitecustomize` hook). It does nothing unless LB_TEST_FAULTS
names faults, comma-separated:

- ``app-send:<marker>`` / ``client-send:<marker>``: the home's application side of
  a forwarded tcp splice / the client side of a tcp splice raises RuntimeError when
  it is handed bytes to write that contain <marker>; so the link event that carries
  those bytes fails in the node's code.
- ``open:<port>``: the home's handling of a NEW frame raises RuntimeError when the
  connection reference's client port is <port>.
- ``spawn-delay:<seconds>:<skip>``: a supervisor's start of a worker process waits
  <seconds> after the process is spawned (before the supervisor relays to it), except
  for the first <skip> spawns; so a restart is slow enough to act during it.
- ``close-hold:<seconds>:<path>``: a node process's first closing of its client
  listeners (a drain: the admin API's or SIGTERM's) first holds its event loop for
  <seconds>, so nothing reads the listening sockets: connects that arrive meanwhile
  complete their handshake in the kernel and wait in the accept queue. The process
  appends ``held <pid>`` to the file <path> when the hold begins and
  ``released <pid>`` when it ends, just before the listeners are closed.

Only tests use it (tests/integration/test_link_flow_faults.py,
tests/integration/test_farm_workers_drain_race.py,
tests/integration/test_farm_drain_backlog.py); lb never imports it.
"""

from __future__ import annotations

import os


def _failing_send(cls: type, kind: str, marker: bytes) -> type:
    """A subclass of the endpoint class `cls` whose `send` raises on `marker`.

    A subclass, not a patched `cls.send`: on the compiled build the endpoint classes
    are native, and a method patched into a native class is seen only by callers that
    look it up by name, never by native ones (they call through the class's method
    table). The classes allow interpreted subclasses (lb.node.splice), and a call on
    an instance of this one reaches this `send` either way, on either build."""

    def send(self, data):  # type: ignore[no-untyped-def]
        if marker in data:
            raise RuntimeError(f"injected fault: {kind}")
        cls.send(self, data)

    return type(f"Failing{cls.__name__}", (cls,), {"__slots__": (), "send": send})


def _install(spec: str) -> None:
    import lb.node.home
    import lb.node.listeners
    from lb.node.home import Home

    for fault in filter(None, spec.split(",")):
        kind, _, arg = fault.partition(":")
        if kind in ("app-send", "client-send"):
            # the home's application connections are made by lb.node.home, the tcp
            # client connections by lb.node.listeners (interpreted modules on both builds)
            module, name = (
                (lb.node.home, "AppEndpoint")
                if kind == "app-send"
                else (lb.node.listeners, "ClientEndpoint")
            )
            setattr(module, name, _failing_send(getattr(module, name), kind, arg.encode()))
        elif kind == "open":
            port = int(arg)
            opened = Home.flow_opened

            def failing_open(self, link, event, _opened=opened, _port=port):  # type: ignore[no-untyped-def]
                if event.ref.client_port == _port:
                    raise RuntimeError("injected fault: flow_opened")
                _opened(self, link, event)

            Home.flow_opened = failing_open  # type: ignore[method-assign]
        elif kind == "spawn-delay":
            import asyncio

            seconds, _, skip = arg.partition(":")
            spawn = asyncio.create_subprocess_exec
            spawned = [0]

            async def slow_spawn(  # type: ignore[no-untyped-def]
                *args,
                _spawn=spawn,
                _delay=float(seconds),
                _skip=int(skip or 0),
                _spawned=spawned,
                **kwargs,
            ):
                proc = await _spawn(*args, **kwargs)
                _spawned[0] += 1
                if _spawned[0] > _skip:
                    await asyncio.sleep(_delay)
                return proc

            asyncio.create_subprocess_exec = slow_spawn  # type: ignore[assignment]
        elif kind == "close-hold":
            import time

            from lb.node.listeners import ClientListeners

            seconds, _, path = arg.partition(":")
            close = ClientListeners.close
            held = [False]

            def note(path: str, what: str) -> None:
                with open(path, "a") as f:
                    f.write(f"{what} {os.getpid()}\n")

            def held_close(  # type: ignore[no-untyped-def]
                self, _close=close, _seconds=float(seconds), _path=path, _held=held
            ):
                if not _held[0]:
                    _held[0] = True
                    note(_path, "held")
                    time.sleep(_seconds)  # the loop too: no accept, no admin, no link
                    note(_path, "released")
                _close(self)

            ClientListeners.close = held_close  # type: ignore[method-assign]
        else:
            raise SystemExit(f"LB_TEST_FAULTS: unknown fault {fault!r}")


if os.environ.get("LB_TEST_FAULTS"):
    _install(os.environ["LB_TEST_FAULTS"])
