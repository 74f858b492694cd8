"""The task queue: the JetStream broker, the hand-built kick beside it, the in-process worker."""
