"""crmscore stage: features."""
