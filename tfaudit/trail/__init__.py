"""The signed, hash-chained trail: the ledger store, signing (Ed25519, KMS), the Merkle tree, checkpoints, proofs and verify.

`store` is the interface every reader and writer goes through (`open_store(url)`); `ledger` is
the file store and the only module that opens a ledger file (`filelines` reads it by
descriptor), `stores/` the shared ones (S3, PostgreSQL). `repair` moves a torn tail aside;
`frontier` keeps the Merkle tree's right edge and `planindex` the plan index, caches beside the
ledger that readers check before they use them.
"""
