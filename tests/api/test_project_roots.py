"""Server-side projects are confined to the operator's `project_roots`: a path is resolved
(symlinks, `..`) before it is checked, at registration and again at every use, and with no roots
at all the feature is off. Real git repositories on disk, the API in-process."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from appliance.api.app import create_app
from appliance.control.models import PrepareJob, Project, SourceBundle
from tests.support.api import assert_rejected


def git_repository(path: Path, content: str = "select 1;\n") -> Path:
    path.mkdir(parents=True)
    git = ["git", "-C", str(path), "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "schema.sql").write_text(content)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    return path


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path / "git"
    root.mkdir()
    return root


@pytest.fixture
def confined(ctx, token, roots):
    """The API with one project root."""
    ctx.settings = ctx.settings.model_copy(update={"project_roots": [roots]})
    client = create_app(ctx).test_client()
    client.auth = {"Authorization": f"Bearer {token}"}
    return client


async def register(client, repo_path: str):
    return await client.post("/v1/projects", json={"name": "shop", "repo_path": repo_path}, headers=client.auth)


async def test_a_repository_inside_a_project_root_is_registered_under_its_resolved_path(confined, roots):
    repo = git_repository(roots / "shop")
    response = await register(confined, str(roots / "other" / ".." / "shop"))
    assert response.status_code == 201, await response.get_json()
    assert (await response.get_json())["repo_path"] == str(repo.resolve())


async def test_a_repository_outside_every_project_root_is_refused(confined, tmp_path):
    outside = git_repository(tmp_path / "secret")
    await assert_rejected(await register(confined, str(outside)), 400, "invalid_argument")
    assert Project.select().count() == 0


async def test_a_symlink_inside_a_root_that_points_outside_is_refused(confined, roots, tmp_path):
    outside = git_repository(tmp_path / "secret")
    (roots / "shop").symlink_to(outside)
    await assert_rejected(await register(confined, str(roots / "shop")), 400, "invalid_argument")
    assert Project.select().count() == 0


async def test_a_dot_dot_path_that_climbs_out_of_the_root_is_refused(confined, roots, tmp_path):
    git_repository(tmp_path / "secret")
    await assert_rejected(await register(confined, f"{roots}/../secret"), 400, "invalid_argument")
    assert Project.select().count() == 0


async def test_a_repository_whose_git_directory_lies_outside_the_root_is_refused(confined, roots, tmp_path):
    outside = git_repository(tmp_path / "secret")
    (roots / "shop").mkdir()
    (roots / "shop" / ".git").write_text(f"gitdir: {outside / '.git'}\n")
    await assert_rejected(await register(confined, str(roots / "shop")), 400, "invalid_argument")
    assert Project.select().count() == 0


async def test_with_no_project_roots_server_side_projects_are_off(client, tmp_path):
    repo = git_repository(tmp_path / "shop")
    response = await client.post("/v1/projects", json={"name": "shop", "repo_path": str(repo)}, headers=client.auth)
    body = await assert_rejected(response, 403, "permission_denied")
    assert body["details"] == {"reason": "projects_disabled"}
    assert Project.select().count() == 0


async def test_a_registered_repository_swapped_for_a_symlink_outside_is_refused_at_use(confined, roots, tmp_path):
    repo = git_repository(roots / "shop")
    assert (await register(confined, str(repo))).status_code == 201
    outside = git_repository(tmp_path / "secret", "select 'root only';\n")
    repo.rename(roots / "moved")
    repo.symlink_to(outside)
    job = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-f", "schema.sql"],
           "source": {"project": "shop", "ref": "HEAD"}}
    await assert_rejected(await confined.post("/v1/prepare-jobs", json=job, headers=confined.auth),
                          400, "invalid_argument")
    assert PrepareJob.select().count() == 0 and SourceBundle.select().count() == 0


async def test_a_registered_repository_is_refused_once_the_operator_removes_its_root(ctx, confined, roots, token):
    repo = git_repository(roots / "shop")
    assert (await register(confined, str(repo))).status_code == 201
    ctx.settings = ctx.settings.model_copy(update={"project_roots": [roots / "elsewhere"]})
    client = create_app(ctx).test_client()
    job = {"prepare_kind": "psql", "image_id": "postgres:15", "psql_args": ["-f", "schema.sql"],
           "source": {"project": "shop", "ref": "HEAD"}}
    await assert_rejected(await client.post("/v1/prepare-jobs", json=job, headers={"Authorization": f"Bearer {token}"}),
                          400, "invalid_argument")
    assert PrepareJob.select().count() == 0
