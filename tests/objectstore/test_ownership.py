"""Each installation owns its object store (bucket and prefix, or directory): it claims an
unclaimed one, refuses one another installation owns, and deletes only what it wrote. Against
the real S3 server and the directory store."""
from __future__ import annotations

import pytest

from appliance.errors import ObjectStoreNotOurs
from appliance.objectstore.ownership import OwnedObjectStore, claim, owner

OURS, THEIRS = "a" * 32, "b" * 32
KEY = "acme/sources/" + "c" * 64 + ".tar.gz"


def test_an_installation_claims_an_unclaimed_store(objects):
    claim(objects, OURS, "the store")
    assert owner(objects) == OURS


def test_the_owner_may_claim_its_store_again(objects):
    claim(objects, OURS, "the store")
    claim(objects, OURS, "the store")
    assert owner(objects) == OURS


def test_an_installation_refuses_a_store_another_installation_owns(objects):
    claim(objects, THEIRS, "the store")
    with pytest.raises(ObjectStoreNotOurs) as refused:
        claim(objects, OURS, "the store")
    assert refused.value.code == "object_store_not_ours" and THEIRS in refused.value.message
    assert owner(objects) == THEIRS


def test_the_marker_is_not_listed_as_an_object(objects):
    claim(objects, OURS, "the store")
    assert objects.list("") == []


def test_an_installation_never_deletes_an_object_another_installation_wrote(objects):
    OwnedObjectStore(objects, THEIRS).put_bytes(KEY, b"tgz")
    OwnedObjectStore(objects, OURS).delete(KEY)
    assert objects.exists(KEY)


def test_an_installation_deletes_what_it_wrote(objects):
    ours = OwnedObjectStore(objects, OURS)
    ours.put_bytes(KEY, b"tgz")
    ours.delete(KEY)
    assert not objects.exists(KEY)
