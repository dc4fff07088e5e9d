"""Neural-network modules of SAM 2 / SAM 2.1 (official state-dict names)."""
