"""Revenue, subscription and overall statistics, computed by SQL aggregation."""
