"""Adapters to the outside world: Kafka, the LanceDB store, the Redis cache. One adapter per module."""
