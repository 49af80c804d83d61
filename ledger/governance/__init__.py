"""Governance: crypto-shredding (right to be forgotten) and tamper evidence (Merkle tree,
signed checkpoints, inclusion and consistency proofs)."""
