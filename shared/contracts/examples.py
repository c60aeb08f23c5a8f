"""The examples of each event type"s data, copied into its generated JSON Schema (`examples`)."""

from __future__ import annotations

from typing import Any

PERSON = "uploads/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/1f0e2d3c-person.jpg"
SHIRT = "uploads/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/7a6b5c4d-shirt.png"

EXAMPLES: dict[str, list[dict[str, Any]]] = {
    "dev.proteus.upload.requested": [
        {
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "file_name": "my shirt.png",
            "content_type": "image/png",
            "size": 482133,
        }
    ],
    "dev.proteus.upload.signed": [
        {
            "key": "uploads/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/2b9d4e1f-my_shirt.png",
            "url": "http://localhost:8000/api/uploads/uploads/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/2b9d4e1f-my_shirt.png?expires=1767225600&signature=3d9f",
            "method": "PUT",
            "headers": {"Content-Type": "image/png"},
            "fields": {},
            "expires_at": "2026-01-01T00:00:00Z",
        }
    ],
    "dev.proteus.tryon.requested": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "person_key": PERSON,
            "garment_key": SHIRT,
            "category": "auto",
            "idempotency_key": "b7f3c9e2-try-1",
        },
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "person_key": PERSON,
            "garment_key": SHIRT,
            "mask_key": "outputs/tailor/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/3fa2b1c0-mask-upper.png",
            "category": "upper",
            "steps": 30,
            "guidance": 2.5,
            "seed": 7,
            "variant": "mask",
            "height": 1024,
            "width": 768,
            "repaint": True,
        },
    ],
    "dev.proteus.weave.requested": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "person_key": PERSON,
            "garment_key": SHIRT,
            "category": "upper",
            "steps": 50,
            "guidance": 2.5,
            "seed": 42,
            "variant": "maskfree",
            "height": 1024,
            "width": 768,
            "repaint": False,
        },
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "person_key": PERSON,
            "garment_key": SHIRT,
            "category": "upper",
            "steps": 50,
            "guidance": 2.5,
            "seed": 42,
            "variant": "mask",
            "height": 1024,
            "width": 768,
            "repaint": True,
            "mask_key": "outputs/tailor/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/3fa2b1c0-mask-upper.png",
            "idempotency_key": "b7f3c9e2-try-1",
        },
    ],
    "dev.proteus.weave.progress": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "step": 10,
            "steps": 50,
        }
    ],
    "dev.proteus.weave.completed": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "result_key": "outputs/weaver/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01.png",
            "seed": 42,
            "model": "catvton-maskfree",
            "metadata": {
                "steps": 50,
                "guidance": 2.5,
                "width": 768,
                "height": 1024,
                "duration_ms": 8123,
                "device": "cuda:0",
            },
        }
    ],
    "dev.proteus.weave.failed": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "error": "person image is not a readable image",
            "code": "invalid_image",
            "retryable": False,
        }
    ],
    "dev.proteus.tailor.requested": [
        {
            "job_id": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "garment_key": SHIRT,
            "category": "auto",
        },
        {
            "job_id": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "garment_key": SHIRT,
            "person_key": PERSON,
            "category": "auto",
            "then_weave": {
                "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
                "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
                "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                "person_key": PERSON,
                "category": "auto",
                "steps": 50,
                "guidance": 2.5,
                "seed": 42,
                "variant": "mask",
                "height": 1024,
                "width": 768,
                "repaint": True,
            },
        },
    ],
    "dev.proteus.tailor.completed": [
        {
            "job_id": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "cutout_key": "outputs/tailor/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/3fa2b1c0-cutout.png",
            "mask_key": "outputs/tailor/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/3fa2b1c0-mask-upper.png",
            "category": "upper",
            "confidence": 0.93,
            "model": "smoke",
        }
    ],
    "dev.proteus.tailor.failed": [
        {
            "job_id": "c3d2e1f0-a9b8-4c7d-8e6f-5a4b3c2d1e0f",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "error": "no garment found in the photo",
            "code": "unusable_photo",
            "retryable": False,
            "reason": "no_garment",
        }
    ],
    "dev.proteus.user.notification": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "job_type": "try_on",
            "status": "done",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "result_s3_key": "outputs/weaver/5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60/0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01.png",
            "error": None,
            "finished_at": "2026-01-01T12:00:08Z",
            "event_id": "1767268808000-0",
        },
        {
            "event": "progress",
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "step": 10,
            "steps": 50,
        },
    ],
    "dev.proteus.job.canceled": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "vton_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
        }
    ],
    "dev.proteus.webhook.requested": [
        {
            "job_id": "0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01",
            "user_id": "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60",
            "url": "https://shop.example.com/hooks/proteus",
        }
    ],
}
