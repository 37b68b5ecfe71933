"""Workers that keep the loop moving: the delayed-reward join (and, later, retraining)."""
