"""The memledger HTTP service (FastAPI): ``create_app(data_dir)`` builds the ASGI app."""

from ledger.service.app import create_app

__all__ = ["create_app"]
