"""The participation worker: decides requests from Kafka in log order and records them."""
