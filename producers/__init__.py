"""Agency gateway: build, sign and publish documents and status notices."""
