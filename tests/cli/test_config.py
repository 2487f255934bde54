"""Where settings come from: flags > environment > config file > defaults; the token is never shown."""
from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli.config import DEFAULT_IMAGE, DEFAULT_URL, default_config_path, read_config_file, resolve_config
from appliance.errors import InvalidArgument

NO_FLAGS = {"url": None, "token": None, "token_file": None, "output": None}


def test_defaults_apply_when_nothing_is_given():
    cfg = resolve_config(NO_FLAGS, {}, {})
    assert (cfg.url, cfg.token, cfg.output, cfg.image) == (DEFAULT_URL, None, "human", DEFAULT_IMAGE)


def test_a_flag_beats_the_environment_and_the_file():
    cfg = resolve_config({**NO_FLAGS, "url": "http://flag:1"}, {"SQLRS_URL": "http://env:2"},
                         {"url": "http://file:3"})
    assert cfg.url == "http://flag:1"


def test_the_environment_beats_the_file():
    cfg = resolve_config(NO_FLAGS, {"SQLRS_URL": "http://env:2", "SQLRS_OUTPUT": "json"},
                         {"url": "http://file:3", "output": "human"})
    assert (cfg.url, cfg.output) == ("http://env:2", "json")


def test_the_file_beats_the_defaults():
    cfg = resolve_config(NO_FLAGS, {}, {"url": "http://file:3/", "image": "postgres:16"})
    assert (cfg.url, cfg.image) == ("http://file:3", "postgres:16")


def test_a_token_file_flag_beats_a_token_in_the_environment(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    cfg = resolve_config({**NO_FLAGS, "token_file": str(token_file)}, {"SQLRS_TOKEN": "from-env"}, {})
    assert cfg.token == "from-file"


def test_a_token_in_the_environment_beats_a_token_file_from_the_config_file(tmp_path: Path):
    token_file = tmp_path / "token"
    token_file.write_text("from-config\n")
    cfg = resolve_config(NO_FLAGS, {"SQLRS_TOKEN": "from-env"}, {"token_file": str(token_file)})
    assert cfg.token == "from-env"


def test_an_empty_token_file_is_an_error(tmp_path: Path):
    (tmp_path / "token").write_text("\n")
    with pytest.raises(InvalidArgument, match="empty"):
        resolve_config({**NO_FLAGS, "token_file": str(tmp_path / "token")}, {}, {})


def test_the_token_never_appears_in_the_config_repr():
    cfg = resolve_config({**NO_FLAGS, "token": "s3cret-value"}, {}, {})
    assert "s3cret-value" not in repr(cfg)


def test_an_unknown_output_format_is_rejected():
    with pytest.raises(InvalidArgument, match="output"):
        resolve_config(NO_FLAGS, {"SQLRS_OUTPUT": "yaml"}, {})


def test_the_default_config_file_lives_under_xdg_config_home():
    assert default_config_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/sqlrs/config.toml")


def test_a_missing_default_config_file_is_fine(tmp_path: Path):
    assert read_config_file(tmp_path / "absent.toml", required=False) == {}


def test_a_missing_explicit_config_file_is_an_error(tmp_path: Path):
    with pytest.raises(InvalidArgument, match="does not exist"):
        read_config_file(tmp_path / "absent.toml", required=True)


def test_an_unknown_config_key_is_rejected(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('url = "http://x:1"\ntoken = "inline"\n')
    with pytest.raises(InvalidArgument, match="unknown key"):
        read_config_file(path, required=True)


def test_config_file_keys_are_read(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text('url = "http://x:1"\noutput = "json"\nimage = "postgres:16"\ntoken_file = "~/t"\n')
    assert read_config_file(path, required=True) == {"url": "http://x:1", "output": "json",
                                                     "image": "postgres:16", "token_file": "~/t"}


def test_the_org_comes_from_the_flag_the_environment_or_the_file():
    assert resolve_config(NO_FLAGS, {}, {"org": "from-file"}).org == "from-file"
    assert resolve_config(NO_FLAGS, {"SQLRS_ORG": "from-env"}, {"org": "from-file"}).org == "from-env"
    assert resolve_config({**NO_FLAGS, "org": "from-flag"}, {"SQLRS_ORG": "from-env"}, {}).org == "from-flag"


@pytest.mark.parametrize("org", ["../../x", "Weird Org!"])
def test_a_malformed_org_is_rejected_before_any_request(org):
    with pytest.raises(InvalidArgument, match="org"):
        resolve_config({**NO_FLAGS, "org": org}, {}, {})
    with pytest.raises(InvalidArgument, match="SQLRS_ORG"):
        resolve_config(NO_FLAGS, {"SQLRS_ORG": org}, {})


def test_a_well_formed_org_is_kept():
    assert resolve_config(NO_FLAGS, {"SQLRS_ORG": "acme-2"}, {}).org == "acme-2"
