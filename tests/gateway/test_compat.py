"""The original React frontend's calls, replayed exactly, on SQLite and on PostgreSQL.

signup with user_name -> login reading `token` -> Bearer auth -> presignedUploadUrl and a
PUT with Content-Type to the returned url (x2) -> POST /vton with user_snap and
uncleaned_outfit -> POST /jobs/weaver -> the WebSocket message with job_type "try_on" and
status "done" (published as notify does, after shared.jobs.complete_job) -> GET /vton
reading user_id, updatedAt and outfit_try_on -> a download URL for the result.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from shared import jobs
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM
from shared.uploads import result_key
from tests.gateway.helpers import PNG, LiveServer, WSClient, redis_of, sessions_of, settings_of, storage_of


def test_the_original_frontend_flow(db_app) -> None:
    app = db_app
    client = app.test_client()

    # Auth: signup with user_name, login reading `token`.
    signup = client.post(
        "/user/signup", json={"user_name": "maya", "email": "maya@example.com", "password": "hunter2hunter2"}
    )
    assert signup.status_code == 201
    login = client.post("/user/login", json={"email": "maya@example.com", "password": "hunter2hunter2"})
    assert login.status_code == 200
    token = login.get_json()["token"]
    client.delete_cookie("token")
    auth = {"Authorization": f"Bearer {token}"}
    me = client.get("/user", headers=auth).get_json()

    # Images: presign, then PUT the bytes with Content-Type to the returned url.
    keys = {}
    for name, file_name in (("user_snap", "me.jpg"), ("uncleaned_outfit", "dress.png")):
        presigned = client.post(
            "/images/presignedUploadUrl", json={"fileName": file_name, "fileType": "image/png"}, headers=auth
        )
        assert presigned.status_code == 200
        body = presigned.get_json()
        url = urlsplit(body["url"])
        put = client.put(f"{url.path}?{url.query}", data=PNG, headers={"Content-Type": "image/png"})
        assert put.status_code == 200
        keys[name] = body["key"]
    assert storage_of(app).get(keys["user_snap"]) == PNG

    # The try-on, then the job.
    created = client.post(
        "/vton", json={"user_snap": keys["user_snap"], "uncleaned_outfit": keys["uncleaned_outfit"]}, headers=auth
    )
    assert created.status_code == 201
    vton = created.get_json()
    job = client.post(
        "/jobs/weaver",
        json={
            "vton_id": vton["id"],
            "user_snap_s3": keys["user_snap"],
            "uncleaned_outfit_s3": keys["uncleaned_outfit"],
        },
        headers=auth,
    )
    assert job.status_code == 202
    job_id = job.get_json()["jobId"]

    # The WebSocket, with the token from /user/ws-token.
    server = LiveServer(app)
    try:
        ws_token = client.get("/user/ws-token", headers=auth).get_json()["token"]
        ws = WSClient.connect(f"{server.ws_url}?token={ws_token}")
        try:
            assert json.loads(ws.receive(timeout=5))["event"] == "ready"
            # What notify does when weave finishes: the rows first, then the stream and the channel.
            result = result_key(me["id"], job_id)
            storage_of(app).put(result, PNG, "image/png")
            with sessions_of(app)() as session:
                assert jobs.complete_job(session, job_id, result_key=result)
                session.commit()
            message = {
                "job_id": job_id,
                "job_type": "try_on",
                "status": "done",
                "user_id": me["id"],
                "vton_id": vton["id"],
                "result_s3_key": result,
                "error": None,
                "finished_at": "2026-01-01T00:00:00Z",
            }
            prefix = settings_of(app).redis_key_prefix
            entry = redis_of(app).xadd(
                prefix + NOTIFICATION_STREAM, {"user_id": me["id"], "message": json.dumps(message)}
            )
            redis_of(app).publish(prefix + NOTIFICATION_CHANNEL, json.dumps({**message, "event_id": entry}))

            pushed = json.loads(ws.receive(timeout=5))
            assert pushed["job_type"] == "try_on" and pushed["status"] == "done"
            assert pushed["vton_id"] == vton["id"] and pushed["result_s3_key"] == result and pushed["event_id"] == entry
        finally:
            ws.close()
    finally:
        server.stop()

    # The history list, as the frontend reads it.
    listed = client.get(f"/vton?user_id={me['id']}", headers=auth)
    assert listed.status_code == 200
    rows = listed.get_json()
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    assert row["user_id"] == me["id"] and row["outfit_try_on"] == result and row["status"] == "done"
    assert row["updatedAt"] >= vton["updatedAt"]

    download = client.post("/images/presignedDownloadUrl", json={"key": row["outfit_try_on"]}, headers=auth)
    url = urlsplit(download.get_json()["url"])
    assert client.get(f"{url.path}?{url.query}").data == PNG
