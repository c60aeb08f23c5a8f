"""The retention sweep on SQLite and PostgreSQL, local storage and S3, with an injected clock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import GarmentAsset, Job, TryOn, User
from shared.db.session import make_engine, make_session_factory
from shared.lifecycle.retention import RetentionPolicy, RetentionSweep
from shared.storage import storage_from_settings
from shared.storage.base import Storage
from tests.conftest import storage_overrides

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 64
POLICY = RetentionPolicy(
    uploads=timedelta(days=30), cutouts=timedelta(days=30), results=timedelta(days=90), orphans=None, batch_size=500
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    upgrade(database_url)
    made = make_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def storage(settings: Settings, storage_backend: str, request: pytest.FixtureRequest) -> Storage:
    return storage_from_settings(settings.with_overrides(**storage_overrides(storage_backend, request)))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_user(session: Session, name: str = "ada") -> User:
    user = User(user_name=name, email=f"{name}@example.com", password_hash="x")
    session.add(user)
    session.flush()
    return user


def add_tryon(
    session: Session,
    storage: Storage,
    user: User,
    created: datetime,
    *,
    person: str | None = None,
    garment: str | None = None,
) -> TryOn:
    person = person or f"uploads/{user.id}/{created:%j%H%M%S}-person.jpg"
    garment = garment or f"uploads/{user.id}/{created:%j%H%M%S}-garment.jpg"
    for key in (person, garment):
        if not storage.exists(key):
            storage.put(key, PNG, "image/jpeg")
    tryon = TryOn(
        user_id=user.id,
        user_snap=person,
        uncleaned_outfit=garment,
        status="queued",
        created_at=created,
        updated_at=created,
    )
    session.add(tryon)
    session.flush()
    return tryon


def add_result(session: Session, storage: Storage, tryon: TryOn, finished: datetime) -> Job:
    job = Job(user_id=tryon.user_id, vton_id=tryon.id, status="succeeded", created_at=finished, finished_at=finished)
    job.result_key = f"outputs/weaver/{tryon.user_id}/{job.id}.png"
    storage.put(job.result_key, PNG, "image/png")
    tryon.outfit_try_on = job.result_key
    tryon.status = "done"
    session.add(job)
    session.flush()
    return job


def test_results_expire_and_history_says_so(sessions: sessionmaker[Session], storage: Storage) -> None:
    with sessions() as session:
        user = add_user(session)
        old = add_tryon(session, storage, user, T0)
        young = add_tryon(session, storage, user, T0 + timedelta(days=60))
        old_job = add_result(session, storage, old, T0)
        young_job = add_result(session, storage, young, T0 + timedelta(days=60))
        session.commit()
        old_key, young_key = old_job.result_key, young_job.result_key
        ids = (old.id, young.id, old_job.id, young_job.id)
    assert old_key and young_key
    clock = Clock(T0 + timedelta(days=91))
    policy = replace(POLICY, uploads=None, cutouts=None)

    report = RetentionSweep(sessions, storage, policy, clock=clock).run()

    assert (report.results, report.objects_deleted) == (1, 1)
    assert not storage.exists(old_key) and storage.exists(young_key)
    with sessions() as session:
        old, young, old_job, young_job = (
            session.get(TryOn, ids[0]),
            session.get(TryOn, ids[1]),
            session.get(Job, ids[2]),
            session.get(Job, ids[3]),
        )
        assert old.outfit_try_on is None and old.result_expired_at == clock.now and old.status == "done"
        assert old_job.result_key is None
        assert young.outfit_try_on == young_key and young.result_expired_at is None
        assert young_job.result_key == young_key
    # idempotent: a second run finds nothing
    again = RetentionSweep(sessions, storage, policy, clock=clock).run()
    assert (again.results, again.objects_deleted) == (0, 0)


def test_uploads_expire_but_stay_while_a_younger_tryon_uses_them(
    sessions: sessionmaker[Session], storage: Storage
) -> None:
    with sessions() as session:
        user = add_user(session)
        old = add_tryon(session, storage, user, T0)
        # "Try again" twenty days later: same person photo, a new garment
        young = add_tryon(session, storage, user, T0 + timedelta(days=20), person=old.user_snap)
        session.commit()
        old_id, young_id = old.id, young.id
        person, old_garment, young_garment = old.user_snap, old.uncleaned_outfit, young.uncleaned_outfit
    clock = Clock(T0 + timedelta(days=31))
    policy = replace(POLICY, results=None, cutouts=None)

    report = RetentionSweep(sessions, storage, policy, clock=clock).run()

    assert (report.uploads, report.objects_deleted, report.kept_for_younger_tryons) == (1, 1, 1)
    assert not storage.exists(old_garment)
    assert storage.exists(person) and storage.exists(young_garment)
    with sessions() as session:
        assert session.get(TryOn, old_id).inputs_expired_at == clock.now
        assert session.get(TryOn, young_id).inputs_expired_at is None

    clock.now = T0 + timedelta(days=51)  # now the younger one expires too, and the shared photo goes
    report = RetentionSweep(sessions, storage, policy, clock=clock).run()
    assert (report.uploads, report.objects_deleted) == (1, 2)
    assert not storage.exists(person) and not storage.exists(young_garment)


def test_cutouts_expire_with_their_rows(sessions: sessionmaker[Session], storage: Storage) -> None:
    with sessions() as session:
        user = add_user(session)
        tryon = add_tryon(session, storage, user, T0 + timedelta(days=29))
        keys = [f"outputs/tailor/{user.id}/{'a' * 64}-cutout.png", f"outputs/tailor/{user.id}/{'b' * 64}-cutout.png"]
        for key, created in zip(keys, (T0, T0 + timedelta(days=29)), strict=True):
            storage.put(key, PNG, "image/png")
            session.add(
                GarmentAsset(user_id=user.id, content_hash=key[-75:-11], kind="cutout", key=key, created_at=created)
            )
        tryon.cleaned_outfit = keys[0]
        session.commit()
        tryon_id = tryon.id
    clock = Clock(T0 + timedelta(days=31))

    report = RetentionSweep(sessions, storage, replace(POLICY, results=None, uploads=None), clock=clock).run()

    assert (report.cutouts, report.objects_deleted) == (1, 1)
    assert not storage.exists(keys[0]) and storage.exists(keys[1])
    with sessions() as session:
        assert session.scalars(select(GarmentAsset.key)).all() == [keys[1]]
        assert session.get(TryOn, tryon_id).cleaned_outfit is None


def test_orphaned_uploads_go_after_a_day(sessions: sessionmaker[Session], storage: Storage) -> None:
    now = datetime.now(UTC)  # object times come from the storage itself
    with sessions() as session:
        user = add_user(session)
        used = add_tryon(session, storage, user, now)
        session.commit()
        used_keys = {used.user_snap, used.uncleaned_outfit}
        orphan = f"uploads/{user.id}/never-used.jpg"
    storage.put(orphan, PNG, "image/jpeg")
    policy = RetentionPolicy(uploads=None, cutouts=None, results=None, orphans=timedelta(hours=24))

    early = RetentionSweep(sessions, storage, policy, clock=Clock(now + timedelta(hours=1))).run()
    assert early.orphans == 0 and storage.exists(orphan)

    late = RetentionSweep(sessions, storage, policy, clock=Clock(now + timedelta(hours=25))).run()
    assert late.orphans == 1 and not storage.exists(orphan)
    assert all(storage.exists(key) for key in used_keys)


def test_zero_keeps_for_ever(sessions: sessionmaker[Session], storage: Storage, settings: Settings) -> None:
    policy = RetentionPolicy.from_settings(
        settings.with_overrides(
            retention_uploads_days=0, retention_cutouts_days=0, retention_results_days=0, retention_orphans_hours=0
        )
    )
    assert (policy.uploads, policy.cutouts, policy.results, policy.orphans) == (None, None, None, None)
    with sessions() as session:
        user = add_user(session)
        add_result(session, storage, add_tryon(session, storage, user, T0), T0)
        session.commit()
    report = RetentionSweep(sessions, storage, policy, clock=Clock(T0 + timedelta(days=10_000))).run()
    assert report.objects_deleted == 0 and len(storage.list(f"uploads/{user.id}/")) == 2


def test_defaults_are_documented_values() -> None:
    policy = RetentionPolicy.from_settings(Settings())
    assert (policy.uploads, policy.cutouts, policy.results, policy.orphans) == (
        timedelta(days=30),
        timedelta(days=30),
        timedelta(days=90),
        timedelta(hours=24),
    )


def expired_results(sessions: sessionmaker[Session], storage: Storage, count: int) -> list[str]:
    with sessions() as session:
        user = add_user(session)
        keys = []
        for n in range(count):
            tryon = add_tryon(session, storage, user, T0 + timedelta(minutes=n))
            keys.append(add_result(session, storage, tryon, T0 + timedelta(minutes=n)).result_key or "")
        session.commit()
    return keys


def test_works_in_batches(sessions: sessionmaker[Session], storage: Storage) -> None:
    keys = expired_results(sessions, storage, 5)
    policy = RetentionPolicy(uploads=None, cutouts=None, results=timedelta(days=90), orphans=None, batch_size=2)
    report = RetentionSweep(sessions, storage, policy, clock=Clock(T0 + timedelta(days=100))).run()
    assert report.results == 5 and report.batches == 3
    assert not any(storage.exists(key) for key in keys)


def test_two_sweeps_at_once_share_the_work(sessions: sessionmaker[Session], storage: Storage) -> None:
    keys = expired_results(sessions, storage, 12)
    policy = RetentionPolicy(uploads=None, cutouts=None, results=timedelta(days=90), orphans=None, batch_size=3)
    reports, errors = [], []
    start = threading.Barrier(2)

    def sweep() -> None:
        try:
            start.wait()
            reports.append(RetentionSweep(sessions, storage, policy, clock=Clock(T0 + timedelta(days=100))).run())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.results for r in reports) == 12  # each job expired exactly once
    assert not any(storage.exists(key) for key in keys)
    with sessions() as session:
        assert session.scalars(select(TryOn).where(TryOn.result_expired_at.is_(None))).all() == []


def add_samples(
    session: Session, storage: Storage, tryon: TryOn, finished: datetime, *, base64: bool, samples: int = 2
) -> list[str]:
    """A /v1 run's finished job with `samples` stored results (return_base64 or links)."""
    api = {"model_name": "tryon-v1.6", "output_format": "png", "return_base64": base64, "webhook_url": None}
    job = Job(
        user_id=tryon.user_id,
        vton_id=tryon.id,
        status="succeeded",
        params={"num_samples": samples, "api": api},
        created_at=finished,
        finished_at=finished,
    )
    keys = [f"outputs/weaver/{tryon.user_id}/{job.id}-{n}.png" for n in range(samples)]
    for key in keys:
        storage.put(key, PNG, "image/png")
    job.result_key, job.result_keys = keys[0], keys
    tryon.outfit_try_on, tryon.status = keys[0], "done"
    session.add(job)
    session.flush()
    return keys


def test_base64_results_go_after_their_short_time_to_live_every_sample_with_them(
    sessions: sessionmaker[Session], storage: Storage
) -> None:
    with sessions() as session:
        user = add_user(session)
        tryons = [add_tryon(session, storage, user, T0) for _ in range(3)]
        delivered = add_samples(session, storage, tryons[0], T0, base64=True)
        links = add_samples(session, storage, tryons[1], T0, base64=False)
        young = add_samples(session, storage, tryons[2], T0 + timedelta(minutes=9), base64=True)
        session.commit()
        tryon_ids = [t.id for t in tryons]
    policy = replace(POLICY, uploads=None, cutouts=None, base64_results=timedelta(seconds=600))
    clock = Clock(T0 + timedelta(minutes=11))

    report = RetentionSweep(sessions, storage, policy, clock=clock).run_base64()

    assert (report.base64_results, report.results, report.objects_deleted) == (1, 0, 2)
    assert not any(storage.exists(key) for key in delivered)
    assert all(storage.exists(key) for key in links + young)
    with sessions() as session:
        first = session.get(TryOn, tryon_ids[0])
        assert first is not None and first.result_expired_at == clock.now and first.outfit_try_on is None
        job = session.scalars(select(Job).where(Job.vton_id == tryon_ids[0])).one()
        assert job.result_key is None and job.result_keys is None
        assert all(session.get(TryOn, i).result_expired_at is None for i in tryon_ids[1:])  # type: ignore[union-attr]

    clock.now = T0 + timedelta(minutes=20)
    later = RetentionSweep(sessions, storage, policy, clock=clock).run()  # a full sweep includes them
    assert (later.base64_results, later.objects_deleted) == (1, 2)
    assert not any(storage.exists(key) for key in young) and all(storage.exists(key) for key in links)

    clock.now = T0 + timedelta(days=91)  # links go with RETENTION_RESULTS_DAYS, every sample
    last = RetentionSweep(sessions, storage, policy, clock=clock).run()
    assert (last.results, last.objects_deleted) == (1, 2) and not any(storage.exists(key) for key in links)


def test_base64_results_live_ten_minutes_by_default() -> None:
    assert RetentionPolicy.from_settings(Settings()).base64_results == timedelta(minutes=10)
    ttl = Settings.from_env({"PROTEUS_ENV": "test", "JWT_SECRET": "x" * 48, "BASE64_RESULT_TTL_S": "120"})
    assert RetentionPolicy.from_settings(ttl).base64_results == timedelta(minutes=2)
