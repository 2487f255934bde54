# python-nomad ships no type information: to the type checker it is dynamic.
from typing import Any

def __getattr__(name: str) -> Any: ...
