"""Example xoev-gateway adapter package (see adapters/README.md in xoev-gateway)."""
