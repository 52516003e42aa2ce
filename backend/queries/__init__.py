"""What the routes read and write: one module per resource, called with keyword arguments."""
