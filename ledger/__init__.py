"""memledger: an event-sourced memory ledger for LLM agents."""

__version__ = "0.1.0"
