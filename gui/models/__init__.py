"""Qt item models over the store's read API; each is checked with pytest-qt's qtmodeltester."""
