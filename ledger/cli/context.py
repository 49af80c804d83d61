"""Opening the ledger of the data directory named on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

from ledger.api import Ledger
from ledger.config import CONFIG_NAME
from ledger.errors import InvalidRequest


def open_cli_ledger(args: argparse.Namespace) -> Ledger:
    """The ledger at ``--data``; a clear error when the directory was never initialised."""
    from ledger.factory import open_ledger

    data = Path(args.data)
    if not (data / CONFIG_NAME).exists():
        raise InvalidRequest(f"{data} is not a memledger data directory; run: memledger --data {data} init")
    return open_ledger(data)
