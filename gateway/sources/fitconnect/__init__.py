"""FIT-Connect source: the gateway as subscriber of its FIT-Connect destinations."""
