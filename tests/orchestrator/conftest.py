from tests.api.conftest import ctx, token  # noqa: F401  (same real services as the API tests)
