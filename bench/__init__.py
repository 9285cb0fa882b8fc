"""Benchmarks of the bus next to the limit of its Kafka client: `make bench` or `python -m bench`."""
