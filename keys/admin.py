"""The operator's cockpit for API keys (filled in below the services)."""
