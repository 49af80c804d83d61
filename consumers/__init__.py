"""Stream consumers: run projections out of process, one lease-holder per view, exactly once."""
