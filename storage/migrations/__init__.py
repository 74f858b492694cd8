"""Alembic migrations of fleetprobe's schema (env.py, versions/); run by storage.migrate."""
