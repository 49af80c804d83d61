"""Local storage helpers: per-thread SQLite connections and transactions, private files."""
