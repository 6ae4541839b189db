"""The semantic answer cache: policy (what may be cached, for how long), lookups and invalidation on index events."""
