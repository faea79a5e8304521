"""Tests of tfaudit.query: log, history and the run index."""
