"""metaledger test suite."""
