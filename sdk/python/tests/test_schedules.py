"""Schedules against a real server: create (written back as a manifest), get with next run
times, update, run now (a task that names its schedule), list, delete, and the errors."""

from __future__ import annotations

import pytest

from conftest import Server
from openclaw_client import AsyncClient, BadRequestError, Client, NotFoundError


def test_schedule_create_get_update_run_list_delete(server: Server) -> None:
    with Client(base_url=server.url, token=server.tokens["admin"]) as c:
        created = c.schedules.create(name="py-nightly", prompt="nightly report", cron="30 2 * * *", timezone="Europe/Berlin", suspend=True)
        assert created.name == "py-nightly"
        assert created.spec["cron"] == "30 2 * * *"
        assert created.status is not None and created.status.suspended
        assert (server.manifests / "schedules/py-nightly.yaml").exists()

        updated = c.schedules.update("py-nightly", suspend=False)
        assert updated.status is not None and not updated.status.suspended
        got = c.schedules.get("py-nightly")
        assert got.status is not None and len(got.status.next_runs) == 5
        assert all(t.endswith("Z") for t in got.status.next_runs)

        run = c.schedules.run("py-nightly")
        done = c.tasks.wait_for_completion(run.id)
        assert done.status == "completed"
        task = c.tasks.get(run.id)
        assert task.schedule == "py-nightly" and task.schedule_slot is None
        got = c.schedules.get("py-nightly")
        assert got.status is not None
        assert [(r.trigger, r.task_id) for r in got.status.last_runs] == [("manual", run.id)]

        assert "py-nightly" in [s.name for s in c.schedules.iterate()]
        c.schedules.delete("py-nightly")
        with pytest.raises(NotFoundError):
            c.schedules.get("py-nightly")


def test_a_bad_cron_is_refused_and_names_the_field(server: Server) -> None:
    with Client(base_url=server.url, token=server.tokens["admin"]) as c:
        with pytest.raises(BadRequestError) as e:
            c.schedules.create(name="py-bad", prompt="p", cron="61 * * * *")
        assert "/spec/cron" in str(e.value.details)


@pytest.mark.anyio
async def test_async_schedules(server: Server) -> None:
    async with AsyncClient(base_url=server.url, token=server.tokens["admin"]) as c:
        s = await c.schedules.create(name="py-async", prompt="p", every="1h")
        assert s.status is not None and s.status.next_runs
        run = await c.schedules.run("py-async")
        assert run.id.startswith("task_")
        assert (await c.schedules.list()).total >= 1
        await c.schedules.delete("py-async")
