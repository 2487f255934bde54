"""One typed settings object: defaults < TOML file < SQLRS_* environment < explicit overrides."""
from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from appliance.errors import InvalidArgument
from appliance.settings import load_settings


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "appliance.toml"
    monkeypatch.setenv("SQLRS_CONFIG", str(path))
    monkeypatch.delenv("SQLRS_LISTEN", raising=False)
    return path


def test_the_file_beats_the_defaults(config_file):
    config_file.write_text('listen = "0.0.0.0:9000"\n')
    assert load_settings().listen == "0.0.0.0:9000"


def test_the_environment_beats_the_file(config_file, monkeypatch):
    config_file.write_text('listen = "0.0.0.0:9000"\n')
    monkeypatch.setenv("SQLRS_LISTEN", "127.0.0.1:9001")
    assert load_settings().listen == "127.0.0.1:9001"


def test_an_explicit_override_beats_the_environment(config_file, monkeypatch):
    config_file.write_text("")
    monkeypatch.setenv("SQLRS_LISTEN", "127.0.0.1:9001")
    assert load_settings(listen="127.0.0.1:9002").listen == "127.0.0.1:9002"


def test_an_unknown_key_in_the_file_is_an_error(config_file):
    config_file.write_text("listen = 1\n")
    with pytest.raises(ValidationError, match="listen"):
        load_settings()


def test_an_inverted_port_range_is_an_error(config_file):
    config_file.write_text("port_min = 7000\nport_max = 6000\n")
    with pytest.raises(ValidationError, match="port_min"):
        load_settings()


def test_the_service_reports_a_bad_setting_in_one_line(config_file, tmp_path):
    config_file.write_text('storage_backend = "zfs-please"\n')
    result = subprocess.run([sys.executable, "-m", "appliance.service.main", "up", "--data-dir", str(tmp_path / "d")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("configuration error: storage_backend")
    assert "Traceback" not in result.stderr


def test_a_missing_config_file_is_a_clear_error(config_file):
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_settings()


def test_a_config_file_that_is_not_toml_is_a_clear_error(config_file):
    config_file.write_text("listen = \n")
    with pytest.raises(InvalidArgument, match="not valid TOML"):
        load_settings()


def test_worker_processes_get_the_real_secret_not_its_mask(config_file):
    from appliance.service.supervisor import settings_env
    config_file.write_text('s3_secret_key = "s3cr3t"\n')
    settings = load_settings()
    assert "s3cr3t" not in repr(settings)
    assert settings_env(settings)["SQLRS_S3_SECRET_KEY"] == "s3cr3t"


def test_worker_processes_read_back_every_setting_the_supervisor_hands_them(config_file, monkeypatch):
    from appliance.service.supervisor import settings_env
    config_file.write_text('nomad_datacenters = ["dc1", "dc2"]\ninstance_cpus = 0.5\nproject_roots = ["/srv/git"]\n')
    settings = load_settings()
    monkeypatch.delenv("SQLRS_CONFIG")
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings


def test_a_secret_is_read_from_the_file_its_file_variable_names(config_file, monkeypatch, tmp_path):
    secret = tmp_path / "s3_secret_key"
    secret.write_text("from-a-credential-file\n")
    config_file.write_text("")
    monkeypatch.setenv("SQLRS_S3_SECRET_KEY_FILE", str(secret))
    assert load_settings().s3_secret_key.get_secret_value() == "from-a-credential-file"


def test_an_unreadable_secret_file_is_a_clear_error(config_file, monkeypatch, tmp_path):
    config_file.write_text("")
    monkeypatch.setenv("SQLRS_NOMAD_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(InvalidArgument, match="SQLRS_NOMAD_TOKEN_FILE: cannot read"):
        load_settings()


def test_oidc_refuses_symmetric_and_none_algorithms(config_file):
    config_file.write_text("")
    for algorithms in (["HS256"], ["none"], []):
        with pytest.raises(ValidationError, match="asymmetric"):
            load_settings(oidc_algorithms=algorithms)


@pytest.mark.parametrize("origin", ["https://id.example.com; script-src *", "https://id.example.com/path",
                                    "javascript:alert(1)", "https://a b.example.com"])
def test_an_oidc_connect_origin_must_be_a_bare_origin(origin):
    with pytest.raises((ValidationError, InvalidArgument)):
        load_settings(oidc_connect_origins=[origin])


def test_bare_origins_are_accepted_for_the_consoles_sign_in():
    assert load_settings(oidc_connect_origins=["https://oauth2.googleapis.com", "http://127.0.0.1:8080"]
                         ).oidc_connect_origins == ["https://oauth2.googleapis.com", "http://127.0.0.1:8080"]
