"""Object stores for artifacts and state streams: one Protocol (``store``), S3/MinIO (``s3``) and
a directory (``local``); ``ownership`` marks what this installation wrote and deletes nothing else.

May import: the foundation, ``storage`` (id rules) and ``control`` (the installation's id).
"""
