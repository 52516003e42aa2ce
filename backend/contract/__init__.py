"""The HTTP contract: response models, request schemas, JSON presenters, date parameters."""
