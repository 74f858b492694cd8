"""Alerts: who is told of a state change, through which channel, and the delivery of it.

- :mod:`jobs.alerts.policy` (pure): which changes a device notifies, to which channels,
  the message ids and the retry plan.
- :mod:`jobs.alerts.templates` (pure): the title and text, rendered in Jinja2's sandbox.
- :mod:`jobs.alerts.senders`: a webhook POST (HMAC-signed) or an Apprise notification.
- :mod:`jobs.alerts.job` and :mod:`jobs.alerts.kick`: the delivery message on the queue.
- :mod:`jobs.alerts.enqueue`: a state change -> ledger rows and queued deliveries.
- :mod:`jobs.alerts.task`: one delivery attempt, run by a worker.
- :mod:`jobs.alerts.sweep`: the leader's reminders and maintenance.started/ended events.
"""
