"""``python -m ledger`` runs the command line."""

from ledger.cli.app import main

raise SystemExit(main())
