"""The NATS JetStream alert listener that turns alerts into flow runs, and its ledger."""
