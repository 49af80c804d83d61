"""Python clients of memledger: ``MemledgerClient`` / ``AsyncMemledgerClient`` over HTTP, and
``EmbeddedClient`` with the same methods on a local data directory (no server)."""

from ledger.client.aio import AsyncMemledgerClient
from ledger.client.embedded import EmbeddedClient
from ledger.client.errors import AuthenticationFailed, ServiceUnreachable
from ledger.client.models import Hit, Memory, Page, Written
from ledger.client.partitioned_embedded import PartitionedEmbeddedClient, open_embedded_client
from ledger.client.sync import MemledgerClient
from ledger.client.transport import RetryPolicy

__all__ = [
    "AsyncMemledgerClient",
    "AuthenticationFailed",
    "EmbeddedClient",
    "Hit",
    "MemledgerClient",
    "Memory",
    "Page",
    "PartitionedEmbeddedClient",
    "RetryPolicy",
    "ServiceUnreachable",
    "Written",
    "open_embedded_client",
]
