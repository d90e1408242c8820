"""crmscore: churn, cross-sell and credit-risk scores for a retail bank's customers."""

from crmscore.known_warnings import silence_known_warnings

__version__ = "0.1.0"

# Every process that runs our code (the CLI, the server's workers, notebooks) imports this package
# first: third-party notices known to be harmless are dropped here, once (see known_warnings).
silence_known_warnings()
