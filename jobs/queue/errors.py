"""The queue's refusals: a live stream, consumer or bucket this process must not use.

::

    BrokerConfigError            the live queue differs from what this process expects
    ├── UnknownTaskError         it carries a task this worker does not have
    └── NotOurQueueError         it belongs to another installation (jobs.queue.ownership)
"""

from __future__ import annotations


class BrokerConfigError(RuntimeError):
    """The live stream or consumer differs from what this process expects."""
