"""A plugin's classes may build on lb.extract.api's public types, in every build of lb.

An extractor plugin (docs/architecture.md, "Extractor") is a third-party module
that imports lb.extract.api. PEP 544 lets a class name a Protocol as its base
to declare that it implements it, and the plugin's module is imported when a
farm file names its kind: a build of lb that refuses such a class refuses the
plugin, and the node does not start.
"""

from __future__ import annotations

from lb.extract.api import Extractor, Identifier, Seen, Verdict, run_chain

SEEN = Seen(data=b"GET / HTTP/1.1\r\n\r\n", eof=False, client=("192.0.2.7", 1), http=None, now=0.0)


def test_an_extractor_class_may_name_the_extractor_protocol_as_its_base() -> None:
    class Declared(Extractor):
        name = "declared"

        def extract(self, seen: Seen) -> Identifier | Verdict:
            return Identifier("declared", seen.client[0], "hash")

    failures: list[BaseException] = []
    got = run_chain([Declared()], SEEN, lambda _e, exc: failures.append(exc))
    assert got == Identifier("declared", "192.0.2.7", "hash")
    assert failures == []
