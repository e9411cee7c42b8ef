"""`make soak`: mixed saharaclient load on the all-in-one deployment while
workers are killed and the API reloaded; then the books are checked (see docs/soak.md)."""
