"""ccm-tui: an Anthropic-compatible proxy with failover and a live terminal UI."""

__version__ = "0.1.0"
