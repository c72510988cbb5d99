"""The I/O layer: listeners, splice, links, timers. The only package with sockets."""
