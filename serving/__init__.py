"""crmscore stage: serving."""
