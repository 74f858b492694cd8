"""The probe: what one check of one device does, whatever its kind."""
