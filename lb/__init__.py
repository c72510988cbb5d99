"""lb: a session-homing load balancer for server farms.

Every node of a farm runs lb in front of its own application. lb reads an
identifier from the first bytes of a client connection, finds the session's
home node, and splices the stream to the local application or forwards it to
the home over an inter-node link. See docs/ and ../shared/DESIGN.md.
"""

__version__ = "0.1.0"
