"""The version of actsearch (a study records the version that created it; workers must match)."""
__version__ = "0.1.0"
