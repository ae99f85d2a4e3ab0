"""fastmlp."""
