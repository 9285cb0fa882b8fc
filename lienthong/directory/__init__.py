"""The directory of agencies, groups and certificates: kept in SQL, published on a compacted topic."""
