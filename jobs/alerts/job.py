"""The delivery message: one attempt of one notification (state change, channel,
reminder), the one shape on the queue."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from jobs.alerts.policy import attempt_msg_id, delivery_key


class NotifyJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    state_change_id: int
    channel_id: int
    reminder: int = Field(0, ge=0)
    attempt: int = Field(1, ge=1)
    # Not before this time (a retry's backoff); None: now.
    not_before: datetime | None = None
    # How many times the wait for ``not_before`` was handed on to a new message.
    hop: int = Field(0, ge=0)

    @property
    def key(self) -> str:
        return delivery_key(self.state_change_id, self.channel_id, self.reminder)

    @property
    def msg_id(self) -> str:
        return attempt_msg_id(self.key, self.attempt, self.hop)
