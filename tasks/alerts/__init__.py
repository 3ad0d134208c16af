"""The alert intake: archive an incoming alert notice as its burst's first product."""
