"""Partitioned ledger: N independent logs (partitions), each with its own gap-free offsets and hash
chain; a cube lives in exactly one partition. N=1 is the single-log ledger."""
