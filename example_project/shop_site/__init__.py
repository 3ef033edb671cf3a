"""Settings and URLs of the example shop project."""
