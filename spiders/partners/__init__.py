"""Small partner classes for sources that need more than registry selectors."""
