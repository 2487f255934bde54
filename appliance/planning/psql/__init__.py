"""psql requests: arguments (``args``), the lexer and its meta-command rules (``lexer``,
``meta``), ``\\i`` includes (``includes``) and the split into steps (``plan``).

May import: the rest of ``planning`` and the foundation.
"""
