"""The signed, hash-chained trail: the ledger store, signing (Ed25519, KMS), the Merkle tree, checkpoints, proofs and verify."""
