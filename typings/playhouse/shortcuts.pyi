# peewee builds queries and models dynamically (implicit ``id`` fields, ``.tuples()``,
# ``.dicts()``); its bundled stubs type those wrongly, so to the type checker it is dynamic.
from typing import Any

def __getattr__(name: str) -> Any: ...
