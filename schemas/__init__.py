"""Versioned JSON Schemas of memledger events: the language-neutral contract for consumers."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
