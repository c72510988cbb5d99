"""Codecs: forwarded-packet frames, HTTP head scanning. Pure: no sockets, no asyncio."""
