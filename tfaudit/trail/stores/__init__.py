"""Shared ledger stores (S3, PostgreSQL): many machines append to one trail (see tfaudit.trail.store)."""
