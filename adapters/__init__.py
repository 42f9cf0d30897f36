"""Built-in adapters, registered through the same entry-point group as third-party ones."""
