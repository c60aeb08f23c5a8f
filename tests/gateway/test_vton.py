"""Try-ons: create, list (paging, newest first), update, delete; only ever the caller's own."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from shared import jobs
from shared.db.models import Job, TryOn
from shared.uploads import result_key
from tests.gateway.helpers import PNG, Person, sessions_of, storage_of

TRYON_KEYS = {
    "id",
    "user_id",
    "user_snap",
    "uncleaned_outfit",
    "cleaned_outfit",
    "outfit_try_on",
    "person_mask",
    "category",
    "category_requested",
    "status",
    "error",
    "progress",
    "progress_step",
    "progress_steps",
    "createdAt",
    "updatedAt",
    "result_expired_at",
    "inputs_expired_at",
    "model",
    "seed",
    "result_keys",
}


def test_create_list_update_delete(db_app) -> None:
    """The main flow, on SQLite and on PostgreSQL."""
    alice, bob = Person(db_app, "alice"), Person(db_app, "bob")
    snap, outfit = alice.upload("me.jpg"), alice.upload("shirt.jpg")
    created = alice.post("/vton", json={"user_snap": snap, "uncleaned_outfit": outfit})
    assert created.status_code == 201
    row = created.get_json()
    assert set(row) == TRYON_KEYS
    assert row["user_id"] == alice.id and row["user_snap"] == snap and row["uncleaned_outfit"] == outfit
    assert row["category"] == row["category_requested"] == "auto" and row["outfit_try_on"] is None

    listed = alice.get("/vton")
    assert listed.status_code == 200 and [r["id"] for r in listed.get_json()] == [row["id"]]
    assert bob.get("/vton").get_json() == []

    updated = alice.put(
        f"/vton/{row['id']}", json={"category": "upper", "cleaned_outfit": f"outputs/tailor/{alice.id}/h-cutout.png"}
    )
    assert updated.status_code == 200
    assert updated.get_json()["category"] == "upper"
    assert updated.get_json()["cleaned_outfit"] == f"outputs/tailor/{alice.id}/h-cutout.png"

    assert bob.put(f"/vton/{row['id']}", json={"category": "lower"}).status_code == 404
    assert bob.delete(f"/vton/{row['id']}").status_code == 404
    assert alice.delete(f"/vton/{row['id']}").status_code == 204
    assert alice.get("/vton").get_json() == []
    assert alice.delete(f"/vton/{row['id']}").status_code == 404


def test_the_original_s3_spellings_and_a_category(person) -> None:
    body = {"user_snap_s3": person.upload(), "uncleaned_outfit_s3": person.upload(), "category": "overall"}
    row = person.post("/vton", json=body).get_json()
    assert row["user_snap"] == body["user_snap_s3"] and row["category"] == "overall"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"user_snap": None}, "user_snap"),
        ({"uncleaned_outfit": None}, "uncleaned_outfit"),
        ({"user_snap": 5}, "user_snap"),
        ({"category": "shoes"}, "category"),
        ({"user_snap": "uploads/SOMEONE/x.png"}, "user_snap"),
        ({"uncleaned_outfit": "../etc/passwd"}, "uncleaned_outfit"),
    ],
)
def test_create_bad_bodies(person, change, field) -> None:
    body = {"user_snap": f"uploads/{person.id}/a.png", "uncleaned_outfit": f"uploads/{person.id}/b.png"}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = person.post("/vton", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field


def test_create_non_json_and_someone_elses_keys(person, other) -> None:
    assert person.post("/vton", data="user_snap=x", content_type="application/x-www-form-urlencoded").status_code == 400
    theirs = other.upload()
    response = person.post("/vton", json={"user_snap": theirs, "uncleaned_outfit": f"uploads/{person.id}/b.png"})
    assert response.status_code == 400 and response.get_json()["field"] == "user_snap"


def _make(app, person: Person, n: int) -> list[str]:
    """n try-ons, one second apart in created_at, oldest first."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    ids = []
    with sessions_of(app)() as session:
        for i in range(n):
            row = TryOn(
                user_id=person.id,
                user_snap=f"uploads/{person.id}/p{i}.png",
                uncleaned_outfit=f"uploads/{person.id}/g{i}.png",
                category="upper",
                created_at=base + timedelta(seconds=i),
                updated_at=base + timedelta(seconds=i),
            )
            session.add(row)
            session.flush()
            ids.append(row.id)
        session.commit()
    return ids


def test_list_is_newest_first_with_limit_and_before(app, person, other) -> None:
    ids = _make(app, person, 5)
    _make(app, other, 2)
    everything = person.get("/vton").get_json()
    assert [r["id"] for r in everything] == ids[::-1]
    page = person.get("/vton?limit=2").get_json()
    assert [r["id"] for r in page] == [ids[4], ids[3]]
    by_id = person.get(f"/vton?limit=2&before={page[-1]['id']}").get_json()
    assert [r["id"] for r in by_id] == [ids[2], ids[1]]
    by_time = person.get("/vton", query_string={"before": page[-1]["createdAt"]}).get_json()
    assert [r["id"] for r in by_time] == [ids[2], ids[1], ids[0]]
    offset = person.get("/vton", query_string={"before": "2026-01-01T01:00:03+01:00"}).get_json()  # 00:00:03 UTC
    assert [r["id"] for r in offset] == [ids[2], ids[1], ids[0]]
    assert person.get(f"/vton?before={ids[0]}").get_json() == []


def test_list_reads_user_id_but_only_ever_shows_the_callers_own(app, person, other) -> None:
    ids = _make(app, person, 1)
    _make(app, other, 1)
    assert [r["id"] for r in person.get(f"/vton?user_id={person.id}").get_json()] == ids
    assert person.get(f"/vton?user_id={other.id}").get_json() == []
    assert all(r["user_id"] == person.id for r in person.get("/vton").get_json())


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "limit=-1", "before=not-a-time-or-id"])
def test_list_bad_parameters(person, query) -> None:
    response = person.get(f"/vton?{query}")
    assert response.status_code == 400
    assert response.get_json()["field"] == query.split("=")[0]


def test_list_before_someone_elses_id_is_refused(app, person, other) -> None:
    theirs = _make(app, other, 1)[0]
    assert person.get(f"/vton?before={theirs}").status_code == 400


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"status": "done"}, 400, "status"),
        ({"outfit_try_on": "outputs/weaver/x/y.png"}, 400, "outfit_try_on"),
        ({"user_id": "someone"}, 400, "user_id"),
        ({"category": "hat"}, 400, "category"),
        ({"user_snap": "uploads/other/x.png"}, 400, "user_snap"),
        ({}, 400, None),
    ],
)
def test_update_refuses_other_fields(person, body, status, field) -> None:
    row = person.create_tryon()
    response = person.put(f"/vton/{row['id']}", json=body)
    assert response.status_code == status
    assert response.get_json()["field"] == field


def test_update_and_delete_unknown_ids(person) -> None:
    for vton_id in ("no-such-id", "x" * 100, "bad id!"):
        assert person.put(f"/vton/{vton_id}", json={"category": "upper"}).status_code == 404
        assert person.delete(f"/vton/{vton_id}").status_code == 404


def test_delete_removes_results_and_unshared_inputs_only(app, person, other) -> None:
    storage = storage_of(app)
    first = person.create_tryon()
    shared_snap = first["user_snap"]
    second = person.post(
        "/vton", json={"user_snap": shared_snap, "uncleaned_outfit": person.upload("other.png")}
    ).get_json()
    job = person.start_weave(first).get_json()
    result = f"outputs/weaver/{person.id}/{job['job_id']}.png"
    tailor_asset = f"outputs/tailor/{person.id}/abc-cutout.png"
    for key in (result, tailor_asset):
        storage.put(key, PNG, "image/png")
    with sessions_of(app)() as session:
        from shared import jobs

        jobs.complete_job(session, job["job_id"], result_key=result)
        session.get(TryOn, first["id"]).cleaned_outfit = tailor_asset
        session.commit()
    bystander = other.create_tryon()

    assert person.delete(f"/vton/{first['id']}").status_code == 204

    assert not storage.exists(result)  # the result goes
    assert not storage.exists(first["uncleaned_outfit"])  # an input only it used goes
    assert storage.exists(shared_snap)  # an input another try-on uses stays
    assert storage.exists(tailor_asset)  # the tailor cache stays
    assert storage.exists(second["uncleaned_outfit"])
    assert storage.exists(bystander["user_snap"]) and storage.exists(bystander["uncleaned_outfit"])
    with sessions_of(app)() as session:
        assert session.get(TryOn, first["id"]) is None and session.get(Job, job["job_id"]) is None
        assert session.get(TryOn, second["id"]) is not None


def test_vton_routes_need_authentication(client) -> None:
    for method, path in (("get", "/vton"), ("post", "/vton"), ("put", "/vton/x"), ("delete", "/vton/x")):
        response = getattr(client, method)(path, json={} if method in ("post", "put") else None)
        assert response.status_code == 401, (method, path)


def test_updated_at_moves_on_update(person) -> None:
    row = person.create_tryon()
    time.sleep(0.01)
    updated = person.put(f"/vton/{row['id']}", json={"category": "lower"}).get_json()
    assert updated["updatedAt"] > row["updatedAt"] and updated["createdAt"] == row["createdAt"]


def test_the_list_names_every_sample_of_the_result(app, person) -> None:
    """result_keys: every sample of the result shown (outfit_try_on first), [] before one."""
    tryon = person.create_tryon()
    assert person.get("/vton").get_json()[0]["result_keys"] == []

    def finish(count: int) -> list[str]:
        job = person.start_weave(tryon, num_samples=count).get_json()["job_id"]
        keys = [result_key(person.id, job, i) for i in range(count)]
        with sessions_of(app)() as session:
            assert jobs.complete_job(session, job, result_key=keys[0], result_keys=keys, seed=5)
            session.commit()
        return keys

    three = finish(3)
    listed = person.get("/vton").get_json()[0]
    assert listed["outfit_try_on"] == three[0] and listed["result_keys"] == three
    one = finish(1)  # "Try again" with one sample: only the new result
    assert person.get("/vton").get_json()[0]["result_keys"] == one


def test_a_revoked_token_reads_no_history_whatever_the_query(db_app) -> None:
    """The history query checks the token's version itself; every other path checks it apart."""
    alice, carol = Person(db_app, "alice"), Person(db_app, "carol")  # carol has no try-ons
    alice.post("/vton", json={"user_snap": alice.upload("me.jpg"), "uncleaned_outfit": alice.upload("s.jpg")})
    paths = ["/vton", "/vton?limit=5", "/vton?before=2100-01-01T00:00:00Z", f"/vton?user_id={carol.id}"]
    for person in (alice, carol):
        for path in paths:
            assert person.get(path).status_code == 200, path
    for person in (alice, carol):
        revoked = person.token
        assert person.post("/user/logout").status_code == 200
        for path in [*paths, "/vton?limit=0", "/vton?before=not-a-time"]:  # 401 before any 400
            response = person.client.get(path, headers={"Authorization": f"Bearer {revoked}"})
            assert response.status_code == 401, (person.name, path, response.get_json())
