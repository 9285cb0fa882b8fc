"""Kafka I/O: the only package that imports kafka-python, and the local broker it talks to."""
