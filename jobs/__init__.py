"""The work: events, the queue, scheduling, the probe and the recorder, the worker."""
