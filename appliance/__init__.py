"""sqlrs appliance: PostgreSQL databases in content-addressed states, handed out as thin clones."""

__version__ = "0.1.0"
