"""crmscore stage: models."""
