"""Routing: home cookie, consistent hash, load-aware placement, flow tables. Pure: no I/O."""
