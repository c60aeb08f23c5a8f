"""upload_signing: answers a presigned upload for a fresh key under the user's prefix."""
