"""``KafkaGroupLease``: consumer-group membership decides which consumer of a view is active.

A Kafka consumer group per view (``<topic>.view.<name>``) subscribes to the ledger's
single-partition sequencer topic. The group coordinator gives that partition to exactly one
member; that member is active. When it dies or stops polling, the group rebalances and a standby
takes over (after about one session timeout and one rebalance). A lease only decides who works:
exactly-once does not depend on it, since every projection applies a batch and its checkpoint
atomically.

The group consumer is polled by a thread of its own, so membership never waits for the view's
batches, and a join or rebalance (several seconds on some brokers) always completes inside one
poll; ``poll()`` only reads the current state.
"""

from __future__ import annotations

import sys
import threading

SESSION_TIMEOUT_MS = 6000  # a member without heartbeats for this long is dead (heartbeats every 1 s)
# also the group's rebalance timeout (how long a rebalance waits for members): with Kafka's 300 s
# default a takeover after kill -9 could take minutes
MAX_POLL_INTERVAL_MS = 15_000
GROUP_POLL_MS = 5000  # one poll of the membership thread; long enough for a whole join and sync


class KafkaGroupLease:
    """Consumer-group membership on the sequencer topic decides the active consumer of a view."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        view: str,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
        max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS,
    ):
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        self.group_id = f"{topic}.view.{view}"
        self.description = f"kafka consumer group {self.group_id}"
        self._assigned = False
        self._held = False
        self._stop = threading.Event()
        lease = self

        class _Listener(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):  # noqa: D401 - kafka-python callback
                lease._assigned = bool(assigned)
                if assigned:
                    lease._consumer.pause(*assigned)  # membership only; events come from the Log

            def on_partitions_revoked(self, revoked):
                lease._assigned = False
                lease._held = False

        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 6),
            max_poll_interval_ms=max_poll_interval_ms,
        )
        self._consumer.subscribe([f"{topic}.seq"], listener=_Listener())
        self._thread = threading.Thread(target=self._membership, daemon=True, name=f"lease-{self.group_id}")
        self._thread.start()

    def _membership(self) -> None:
        while not self._stop.is_set():
            try:
                self._consumer.poll(timeout_ms=GROUP_POLL_MS)
                self._held = self._assigned and bool(self._consumer.assignment())
            except Exception as exc:  # noqa: BLE001 - the broker is away: not held, try again
                self._held = False
                print(f"{self.description}: {exc!r}; retrying", file=sys.stderr)
                self._stop.wait(1.0)

    def poll(self) -> bool:
        """True while this member holds the view's partition."""
        return self._held and not self._stop.is_set()

    def release(self) -> None:
        self._held = False
        self._stop.set()
        self._thread.join(GROUP_POLL_MS / 1000 + 5)
        self._consumer.close()
