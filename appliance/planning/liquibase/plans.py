"""What a Liquibase request's steps are, and what each is keyed by.

``update-sql`` against an empty cluster of the base image depends only on the image, the source
(uploaded bundles and project refs are content-addressed and never change), the arguments and
the Liquibase version. Its result is kept, so a repeated request is planned at admission without
a JVM: a full hit is then answered like any psql hit (from the warm pool, in milliseconds),
and a partial one starts building at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from appliance.planning.hashing import digest, image_parent, state_id
from appliance.planning.liquibase.args import LiquibaseCommand
from appliance.planning.liquibase.update_sql import Changeset
from appliance.planning.steps import PlannedStep

# What a key means. Bumped whenever what goes into a changeset's key (or a cached plan) changes,
# so that no state or plan made under an older meaning is ever found under the new one.
KEY_VERSION = "2"


@dataclass(frozen=True)
class PlannedChangeset:
    changeset: Changeset
    volatile: bool  # runAlways/runOnChange, or after one: keyed by the job, never shared
    preconditions: str = ""  # the changelog's and the changeset's, canonical (liquibase_changelogs)


def plan_key(*, image: str, source_id: str, work_dir: str, command: LiquibaseCommand, version: str) -> str:
    return digest(("key_version", KEY_VERSION), ("image", image), ("source", source_id), ("work_dir", work_dir),
                  *(("arg", a) for a in command.argv(sql_only=True)), ("liquibase", version))


def chain(planned: list[PlannedChangeset], *, image: str, command: LiquibaseCommand, version: str,
          job_id: str) -> list[PlannedStep]:
    """One step per changeset, keyed by its parent and :func:`changeset_key`; volatile ones by the
    job too."""
    steps, parent = [], image_parent(image)
    for p in planned:
        task_hash = changeset_key(p, command=command, version=version, job_id=job_id)
        output = state_id(parent, task_hash)
        steps.append(PlannedStep(task_hash, output, p.changeset.name,
                                   {"kind": "lb", "summary": p.changeset.name, "volatile": p.volatile,
                                    "changeset": dataclasses.asdict(p.changeset)}))
        parent = f"state:{output}"
    return steps


def changeset_key(p: PlannedChangeset, *, command: LiquibaseCommand, version: str, job_id: str) -> str:
    """Everything a changeset leaves in the database, and nothing else:

    * its checksum (the SQL's hash when Liquibase printed none);
    * the ``databasechangelog`` row Liquibase says it writes, but for the columns that differ on
      every run: id, author, filename (as Liquibase spells it), checksum, description, comments,
      exectype, contexts, labels, tag and Liquibase version, whatever Liquibase puts there;
    * its path, id and author as Liquibase names it (in the row too, unless none was printed);
    * its and its changelog's preconditions, which decide whether it runs but are not in the
      checksum;
    * the changelog parameters (``-D``): Liquibase does not say which changesets use one, and a
      parameter in a precondition changes what a changeset does and nothing it prints;
    * the Liquibase version.

    Not in it: the ``--contexts``/``--labels`` filters, the search path, the changelog's name and
    the files' layout, beyond what the row records: they choose which changesets run, and a
    chosen changeset does the same whatever chose it."""
    c = p.changeset
    return digest(("kind", "lb"), ("key_version", KEY_VERSION), ("changeset", c.key),
                  ("recorded", c.recorded or ""), ("name", c.name), ("preconditions", p.preconditions),
                  ("liquibase", version), *command.key_parts(), *((("job", job_id),) if p.volatile else ()))
