"""Bad-input corpus: seeded broken inputs run through the command line (issue 15)."""
