"""Model monitoring: stability and back-testing of every champion (``crmscore monitor``)."""
