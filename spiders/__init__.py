"""Generic spiders, one per source kind; partner-specific classes live in ``spiders.partners``."""
