"""Check kinds chosen by the address (``address.py``): one module per kind, each filling one
:class:`jobs.probe.facts.Facts`."""
