"""What every process of the FCFS campaign system shares: settings, schema, event format, Kafka helpers."""
