"""Shared plumbing: settings, logging, NATS connections, the embedded nats-server."""
