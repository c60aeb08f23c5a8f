"""The answers carry exactly the fields of their contract model (shared/contracts/responses.py)."""

from __future__ import annotations

from shared.contracts import responses
from tests.gateway.helpers import Person


def test_a_tryon_a_job_and_the_user_have_every_field_of_their_model(person: Person) -> None:
    tryon = person.create_tryon(category="upper")
    assert set(tryon) == set(responses.TryOn.model_fields)
    job = person.start_weave(tryon, seed=7).get_json()
    assert set(job) == set(responses.JobAccepted.model_fields)
    got = person.get(f"/jobs/{job['job_id']}").get_json()
    assert set(got) == set(responses.Job.model_fields)
    [listed] = person.get("/vton").get_json()
    assert set(listed) == set(responses.TryOn.model_fields) and listed["seed"] == 7
    assert set(person.get("/user").get_json()) == set(responses.User.model_fields)
    responses.Job.model_validate(got)
    responses.TryOn.model_validate(listed)
