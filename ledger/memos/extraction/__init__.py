"""Fact extraction from ingested conversation messages (a consumer of the log)."""
