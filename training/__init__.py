"""crmscore stage: training."""
