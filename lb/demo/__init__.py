"""`lb demo`: a 3-node farm on loopback with small built-in demo applications."""
