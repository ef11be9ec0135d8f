"""Example applications behind Switchboard, each runnable as ``python -m examples.<name>``."""
