"""``KafkaGroupLease``: consumer-group membership decides which consumer of a view is active.

A Kafka consumer group per view (``<topic>.view.<name>``) subscribes to the ledger's
single-partition sequencer topic. The group coordinator gives that partition to exactly one
member; that member is active. When it dies or stops polling, the group rebalances and a standby
takes over (after about one session timeout). A lease only decides who works: exactly-once does
not depend on it, since every projection applies a batch and its checkpoint atomically.
"""

from __future__ import annotations


class KafkaGroupLease:
    """Consumer-group membership on the sequencer topic decides the active consumer of a view."""

    def __init__(self, bootstrap_servers: str, topic: str, view: str, session_timeout_ms: int = 6000):
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        self.group_id = f"{topic}.view.{view}"
        self.description = f"kafka consumer group {self.group_id}"
        self._active = False
        lease = self

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):  # noqa: D401 - kafka-python callback
                lease._active = bool(assigned)
                if assigned:
                    lease._consumer.pause(*assigned)  # membership only; events come from the Log

            def on_partitions_revoked(self, revoked):
                lease._active = False

        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 6),
            max_poll_interval_ms=300_000,
        )
        self._consumer.subscribe([f"{topic}.seq"], listener=_Listener())

    def poll(self) -> bool:
        self._consumer.poll(timeout_ms=100)
        return self._active and bool(self._consumer.assignment())

    def release(self) -> None:
        self._active = False
        self._consumer.close()
